using System.Diagnostics.Metrics;
using System.Net;
using EtcdShield.Api;
using EtcdShield.Audit;
using EtcdShield.Authorization;
using EtcdShield.Concurrency;
using EtcdShield.Configuration;
using EtcdShield.Encryption;
using EtcdShield.Gateway;
using EtcdShield.Keys;
using EtcdShield.Leases;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.ReadCache;
using EtcdShield.Relay;
using EtcdShield.Reload;
using EtcdShield.Telemetry;
using EtcdShield.Tls;
using EtcdShield.Watches;
using Grpc.AspNetCore.Server.Model;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging.Console;
using OpenTelemetry.Metrics;

namespace EtcdShield.Hosting;

/// <summary>
/// Composes the proxy from validated <see cref="ShieldOptions"/>: Kestrel with mutual TLS on the client URLs,
/// the relay for every etcd method, and /health, /livez, /readyz and /metrics on the metrics URL. Used by the command line
/// and, in-process, by the end-to-end tests.
/// </summary>
internal static class ShieldHost
{
    public static WebApplication Build(ShieldOptions options, Action<ILoggingBuilder>? configureLogging = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(Enum.Parse<LogLevel>(options.LogLevel, ignoreCase: true));
        // Kestrel and gRPC report every refused handshake and reset stream; our own log says what matters.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        if (configureLogging is null)
        {
            AddConsoleLog(builder.Logging, options.LogFormat);
        }
        else
        {
            configureLogging(builder.Logging);
        }

        ConfigureKestrel(builder, options);
        ConfigureServices(builder.Services, options);

        var app = builder.Build();
        // The meter provider first, so that the counters their owners export at zero from their constructors are seen,
        // then the gauges that nothing else asks for.
        app.Services.GetService<MeterProvider>();
        app.Services.GetRequiredService<ReadinessMetrics>();
        app.Services.GetRequiredService<Streams.StreamMetrics>();
        // Built now, so that a method whose values no handler covers stops the proxy before it listens.
        app.Services.GetRequiredService<RelayRoutes>();
        MapEndpoints(app, options);
        return app;
    }

    /// <summary>The log on stdout: one line per event, text (the default) or JSON lines in zap's keys (<c>--log-format json</c>).</summary>
    private static void AddConsoleLog(ILoggingBuilder logging, string format)
    {
        if (format == ShieldOptions.JsonLogFormat)
        {
            // Registered as a formatter directly: AddConsoleFormatter<,> binds its options by reflection, which trimming breaks.
            logging.AddConsole(o => o.FormatterName = JsonLogFormatter.FormatterName);
            logging.Services.TryAddEnumerable(ServiceDescriptor.Singleton<ConsoleFormatter, JsonLogFormatter>());
            return;
        }

        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
    }

    private static void ConfigureKestrel(WebApplicationBuilder builder, ShieldOptions options)
    {
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.Http2.MaxStreamsPerConnection = options.MaxConcurrentStreams;
            // Larger windows than Kestrel's defaults so big ranges and snapshots are not throttled by flow control.
            kestrel.Limits.Http2.InitialConnectionWindowSize = 4 * 1024 * 1024;
            kestrel.Limits.Http2.InitialStreamWindowSize = 1024 * 1024;
            kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(30);
            kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);

            foreach (var url in options.ListenClientUrls)
            {
                Listen(kestrel, url, listen =>
                {
                    // HTTP/1.1 for the JSON gateway's clients (curl, etcd3gw, anything written against etcd's gateway).
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    listen.UseHttps(new TlsHandshakeCallbackOptions
                    {
                        OnConnection = context => ValueTask.FromResult(
                            kestrel.ApplicationServices.GetRequiredService<ServerTls>().ForConnection(context.Connection)),
                        HandshakeTimeout = TimeSpan.FromSeconds(10),
                    });
                });
            }

            if (options.MetricsListenUrl is { } metrics)
            {
                Listen(kestrel, metrics, listen => listen.Protocols = HttpProtocols.Http1);
            }
        });
    }

    private static void Listen(KestrelServerOptions kestrel, Uri url, Action<ListenOptions> configure)
    {
        if (string.Equals(url.Host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            kestrel.ListenLocalhost(url.Port, configure);
        }
        else if (IPAddress.TryParse(url.Host.Trim('[', ']'), out var address))
        {
            kestrel.Listen(address, url.Port, configure);
        }
        else
        {
            throw new ConfigurationException($"listen URL {url} must name an IP address or localhost");
        }
    }

    private static void ConfigureServices(IServiceCollection services, ShieldOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton(TimeProvider.System);
        AddReloadableFiles(services, options);
        services.AddSingleton<IClientAdmission, PolicyAdmission>();
        services.AddSingleton<ClientCertificateValidator>();
        services.AddSingleton<ServerTls>();
        services.AddSingleton<CertificateExpiry>();
        services.AddSingleton<IReloadObserver>(sp => sp.GetRequiredService<CertificateExpiry>());
        services.AddSingleton<ConfigurationReloader>();
        services.AddHostedService(sp => sp.GetRequiredService<ConfigurationReloader>());
        services.AddSingleton<AuditLog>();
        services.AddHostedService(sp => sp.GetRequiredService<AuditLog>());
        services.AddSingleton(KeyRedaction.For(options.AuditHashKeys));
        services.AddSingleton<AuthorizationMetrics>();
        services.AddSingleton<CallerLookup>();
        services.AddSingleton<AccessGate>();
        services.AddSingleton<Streams.OpenStreams>();
        services.AddSingleton<Streams.StreamMetrics>();
        services.AddSingleton<UpstreamChannel>();
        services.AddSingleton<ReadCacheMetrics>();
        services.AddSingleton(sp => new SerializableReadCache(
            sp.GetRequiredService<UpstreamChannel>().Invoker,
            options.SerializableCacheSize,
            sp.GetRequiredService<ReadCacheMetrics>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<SerializableReadCache>>()));
        services.AddSingleton<RelayMetrics>();
        services.AddSingleton(_ => new RelayTraces(options.TraceSamplingRatio));
        services.AddSingleton<EtcdReachability>();
        services.AddSingleton<HealthEndpoint>();
        AddLifecycle(services, options);
        EtcdHttpEndpoints.AddTo(services);
        GatewayCors.AddTo(services, options);
        services.AddSingleton<EncryptionMetrics>();
        services.AddSingleton<KeyMetrics>();
        AddValueProtection(services, options);
        services.AddSingleton(sp => RelayRoutesFor(options, sp));
        services.AddSingleton<CallScopes>();
        if (options.WatchSharing)
        {
            services.AddSingleton(sp => new WatchHub(
                sp.GetRequiredService<UpstreamChannel>().Invoker,
                sp.GetRequiredService<RelayRoutes>().StreamRewriter(RelayedMethod.All().Single(m => m.IsWatch)),
                options,
                sp.GetRequiredService<IMeterFactory>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<WatchHub>>(),
                sp.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping));
        }

        services.AddSingleton(sp => new RequestRelay(
            sp.GetRequiredService<CallScopes>(), sp.GetRequiredService<RelayRoutes>(), options.WatchSharing ? sp.GetRequiredService<WatchHub>() : null));
        services.AddSingleton<RelayService>();
        services.AddSingleton(new GatewayRoutes(RelayedMethod.All()));
        services.AddSingleton<GatewayEndpoint>();
        services.AddSingleton<IServiceMethodProvider<RelayService>, RelayMethodProvider>();
        services.AddGrpc(grpc =>
        {
            // etcd accepts requests up to --max-request-bytes plus 512 KiB of gRPC framing slack.
            grpc.MaxReceiveMessageSize = ShieldOptions.MaxReceiveMessageBytes(options.MaxRequestBytes);
            grpc.MaxSendMessageSize = null;
            grpc.EnableDetailedErrors = false;
        });
        services.AddOpenTelemetry().ConfigureResource(TraceExport.DescribeService).WithMetrics(metrics => metrics
            // Every feature's meter is "EtcdShield.<Feature>" (Relay, Encryption, Keys, Authorization, Audit, Tls, Reload, Streams, Hosting).
            .AddMeter("EtcdShield.*")
            .AddPrometheusExporter());
        TraceExport.AddTo(services, options);

        // Last, so that it is the first hosted service stopped: streams end with their status before the server stops.
        services.AddHostedService<StreamShutdown>();
    }

    /// <summary>
    /// Readiness (etcd, and the HSM or KMS plugin when one holds the KEK), the service manager's notifications, and
    /// how long a stop may take: Kestrel stops accepting at once and lets unary calls in flight finish within
    /// --shutdown-timeout, then aborts what is left.
    /// </summary>
    private static void AddLifecycle(IServiceCollection services, ShieldOptions options)
    {
        services.Configure<HostOptions>(host => host.ShutdownTimeout = options.ShutdownTimeout);
        services.AddSingleton<IReadinessCheck>(sp => sp.GetRequiredService<EtcdReachability>());
        if (!options.NoEncryption && (options.Pkcs11Module is not null || options.KmsPluginEndpoint is not null))
        {
            // A key file is read once at start-up; only a provider behind a session or a socket can go away.
            services.AddSingleton<IReadinessCheck>(sp => new KeyProviderReachability(sp.GetRequiredService<KeyRingRefresher>()));
        }

        services.AddSingleton(sp => new Readiness(sp.GetServices<IReadinessCheck>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<ReadinessMetrics>();
        services.AddSingleton<ProbeEndpoints>();
        services.AddSingleton<StreamResponses>();
        if (NotifySocket.AddressFromEnvironment() is { } notify)
        {
            services.AddHostedService(sp => new ServiceNotifications(
                notify, sp.GetRequiredService<IHostApplicationLifetime>(), options, sp.GetRequiredService<ILogger<ServiceNotifications>>()));
        }
    }

    /// <summary>
    /// What is read from files and read again when they change. Loaded here, while the host is built, so that a
    /// broken file stops the proxy before it listens.
    /// </summary>
    private static void AddReloadableFiles(IServiceCollection services, ShieldOptions options)
    {
        var certificate = new ReloadableFiles<ServerCertificate>(
            "server certificate", [options.CertFile, options.KeyFile], () => ServerTls.LoadServerCertificate(options.CertFile, options.KeyFile));
        var revocationHistory = new RevocationHistory();
        var trust = new ReloadableFiles<ClientTrust>(
            "client trust", options.ClientCrlFile is { } crl ? [options.TrustedCaFile, crl] : [options.TrustedCaFile],
            () => ClientTrust.Load(options.TrustedCaFile, options.ClientCrlFile, revocationHistory));
        var policy = new ReloadableFiles<AccessPolicy>(
            "policy", options.PolicyFile is { } file ? [file] : [], () => LoadPolicy(options));
        services.AddSingleton(certificate);
        services.AddSingleton(trust);
        services.AddSingleton(policy);
        services.AddSingleton<IReloadable>(certificate);
        services.AddSingleton<IReloadable>(trust);
        services.AddSingleton<IReloadable>(policy);
    }

    private static AccessPolicy LoadPolicy(ShieldOptions options)
    {
        var identities = new List<PolicyIdentity>();
        if (options.PolicyFile is { } file)
        {
            identities.AddRange(PolicyFile.Load(file));
        }

        identities.AddRange(AccessPolicy.FromAllowFlags(options.AllowCommonNames, options.AllowDnsNames, options.AllowUris));
        return new AccessPolicy(identities, options.PolicyFile ?? "--allow-* flags");
    }

    private static void AddValueProtection(IServiceCollection services, ShieldOptions options)
    {
        if (options.NoEncryption)
        {
            services.AddSingleton<IValueProtector>(PassthroughValueProtector.Instance);
            return;
        }

        KeyProviders.AddKeyRing(services, options);
        services.AddSingleton(DataKeyOptions.Default);
        services.AddSingleton<DataKeyManager>();
        services.AddSingleton<IDataKeyProvider>(sp => sp.GetRequiredService<DataKeyManager>());
        services.AddSingleton(EncryptionOptionsFor(options));
        services.AddSingleton<IValueProtector, ValueProtector>();
    }

    private static EncryptionOptions EncryptionOptionsFor(ShieldOptions options)
    {
        try
        {
            return EncryptionOptions.FromUtf8(options.EncryptPrefixes, options.LegacyPlaintextPrefixes, options.MaxRequestBytes, options.RollbackProtectionPrefixes, options.LegacyUnboundPrefixes) with { HashKeysInLogs = options.AuditHashKeys };
        }
        catch (ArgumentException e)
        {
            throw new ConfigurationException(e.Message, e);
        }
    }

    private static RelayRoutes RelayRoutesFor(ShieldOptions options, IServiceProvider services)
    {
        var routes = new RelayRoutes();
        var members = new MemberUrlHandler(options.AdvertiseClientUrls);
        foreach (var method in MemberUrlHandler.Methods)
        {
            routes.Handle(method, members);
        }

        // Leases belong to the identity that granted them: the proxy chooses their IDs and lists only the caller's.
        var callers = services.GetRequiredService<CallerLookup>();
        routes
            .Handle(Lease.Descriptor.FindMethodByName("LeaseGrant"), new LeaseGrantHandler(callers))
            .Handle(Lease.Descriptor.FindMethodByName("LeaseLeases"), new LeaseListHandler(callers));

        var protector = services.GetRequiredService<IValueProtector>();
        if (protector.Enabled)
        {
            AddValueRoutes(
                routes,
                protector,
                new ValueLimits(options.MaxRequestBytes, options.MaxTxnOps),
                services.GetRequiredService<TimeProvider>(),
                services.GetRequiredService<EncryptionMetrics>(),
                services.GetRequiredService<ILoggerFactory>());
        }

        return routes;
    }

    /// <summary>
    /// Every handler that seals and opens values: KV and Watch (Encryption), Lock and Election (Concurrency). Only
    /// the composed table is checked, so a method is refused at start-up unless one of them handles it.
    /// </summary>
    internal static void AddValueRoutes(RelayRoutes routes, IValueProtector protector, ValueLimits limits, TimeProvider time, EncryptionMetrics metrics, ILoggerFactory loggers)
    {
        ValueRoutes.AddTo(routes, protector, limits, time, metrics, loggers);
        ConcurrencyRoutes.AddTo(routes, protector, limits);
        ValueCoverage.Require(EtcdApi.Methods, routes.Covers);
    }

    private static void MapEndpoints(WebApplication app, ShieldOptions options)
    {
        var metricsPort = options.MetricsListenUrl?.Port;
        GatewayCors.Use(app);
        EtcdHttpEndpoints.Map(app);

        // The metrics port is plain HTTP: it serves /health, /livez, /readyz and /metrics and nothing else, so it
        // can never become a way around mutual TLS.
        var streamResponses = app.Services.GetRequiredService<StreamResponses>();
        app.Use((context, next) =>
        {
            streamResponses.Track(context);
            var onMetricsPort = context.Connection.LocalPort == metricsPort;
            var path = context.Request.Path;
            if (onMetricsPort && !(path == "/health" || path == "/livez" || path == "/readyz" || path == "/metrics"))
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }

            if (!onMetricsPort && path == "/metrics")
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }

            return next(context);
        });

        app.MapGrpcService<RelayService>();
        var gateway = app.Services.GetRequiredService<GatewayEndpoint>();
        foreach (var prefix in GatewayRoutes.Prefixes)
        {
            app.Map(prefix + "/{**path}", gateway.HandleAsync);
        }

        if (metricsPort is not null)
        {
            var health = app.Services.GetRequiredService<HealthEndpoint>();
            app.MapGet("/health", health.WriteAsync);
            app.MapGet("/livez", ProbeEndpoints.WriteLivezAsync);
            app.MapGet("/readyz", app.Services.GetRequiredService<ProbeEndpoints>().WriteReadyzAsync);
            app.MapPrometheusScrapingEndpoint("/metrics");
        }
    }
}
