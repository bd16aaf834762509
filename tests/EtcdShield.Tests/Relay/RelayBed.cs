using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using EtcdShield.Audit;
using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Relay;
using EtcdShield.Reload;
using EtcdShield.Streams;
using EtcdShield.Tls;
using EtcdShield.Watches;
using Grpc.Core;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.Relay;

/// <summary>
/// The whole relay (<see cref="RequestRelay"/> with its call scopes, gate and stream limits) in front of an
/// <see cref="InMemoryEtcd"/>, for one client whose certificate names it "app". The policy is a file the test can
/// rewrite and reload; the proxy's shutdown is a token the test cancels.
/// </summary>
internal sealed class RelayBed : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-relay").FullName;
    private readonly string _policyFile;
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly X509Certificate2 _ca;
    private readonly AuditLog _audit;
    private readonly CancellationTokenSource _stopping = new();
    private readonly AdmittedClient _connection = new(null);

    /// <param name="audit">Whether the relay writes an audit log, which <see cref="AuditedAsync"/> reads.</param>
    /// <param name="traces">The relay's spans; none are made without.</param>
    /// <param name="upstream">What the relay reaches <see cref="Etcd"/> through (the read cache); etcd itself by default.</param>
    /// <param name="watches">With options, watch streams are served by a <see cref="WatchHub"/> (watch sharing) with them.</param>
    /// <param name="watchRewriter">What opens the shared watches' values.</param>
    public RelayBed(string keys = "{ prefix: /app/, permission: readwrite }", string methods = "[Maintenance/Status, Maintenance/Snapshot, Lease/LeaseKeepAlive]", int maxStreams = 1000, bool audit = false, RelayTraces? traces = null, Func<CallInvoker, CallInvoker>? upstream = null, ShieldOptions? watches = null, IStreamRewriter? watchRewriter = null)
    {
        _policyFile = Path.Combine(_dir, "policy.yaml");
        File.WriteAllText(_policyFile, PolicyText(keys, methods));
        Policy = new ReloadableFiles<AccessPolicy>("policy", [_policyFile], () => new AccessPolicy(PolicyFile.Load(_policyFile), _policyFile));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        _ca = new CertificateRequest("CN=relay-ca", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var trust = new ReloadableFiles<ClientTrust>("client trust", [], () => new ClientTrust([_ca], []));
        _connection.Admit(new ClientIdentity("app", [], [], [], Convert.ToHexString(SHA256.HashData(_ca.RawData))), [CertificateId.OfAnchor(_ca)]);

        var meters = _services.GetRequiredService<IMeterFactory>();
        Requests = new MetricCollector<long>(meters, RelayMetrics.MeterName, "etcdshield.requests");
        Denied = new MetricCollector<long>(meters, AuthorizationMetrics.MeterName, "etcdshield.requests.denied");
        _audit = new AuditLog(new ShieldOptions { AuditLog = audit ? Path.Combine(_dir, "audit.log") : null }, meters, NullLogger<AuditLog>.Instance);
        _audit.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        var options = new ShieldOptions { MaxStreamsPerIdentity = maxStreams, MaxStreamsPerConnection = maxStreams };
        var scopes = new CallScopes(
            upstream?.Invoke(Etcd) ?? Etcd,
            new CallerLookup(Policy, trust),
            new AccessGate(KeyRedaction.None, new AuthorizationMetrics(meters), NullLogger<AccessGate>.Instance),
            new OpenStreams(options, Policy, trust, NullLogger<OpenStreams>.Instance),
            new RelayMetrics(meters),
            _audit,
            Time,
            new FakeLogger(Logs),
            _stopping.Token,
            traces);
        Routes = new RelayRoutes();
        Hub = watches is null ? null : new WatchHub(Etcd, watchRewriter, watches, meters, Time, NullLogger<WatchHub>.Instance, _stopping.Token);
        Relay = new RequestRelay(scopes, Routes, Hub);
    }

    public InMemoryEtcd Etcd { get; } = new();

    /// <summary>What the relay logged.</summary>
    public FakeLogCollector Logs { get; } = new();

    public FakeTimeProvider Time { get; } = new();

    public ReloadableFiles<AccessPolicy> Policy { get; }

    public RelayRoutes Routes { get; }

    public RequestRelay Relay { get; }

    /// <summary>The watch sharing hub, when the bed shares watches.</summary>
    public WatchHub? Hub { get; }

    /// <summary><c>etcdshield.requests</c> as this relay counted them, by method and code.</summary>
    public MetricCollector<long> Requests { get; }

    public MetricCollector<long> Denied { get; }

    public static RelayedMethod Method(string name) => RelayedMethod.All().Single(m => m.Name == name);

    /// <summary>A call context from the bed's client, on its one connection.</summary>
    public TestServerCallContext Context(CancellationToken cancellationToken = default) => Context(null, cancellationToken);

    /// <summary>A call from the bed's client carrying <paramref name="headers"/> as its metadata.</summary>
    public TestServerCallContext Context(Metadata? headers, CancellationToken cancellationToken = default)
    {
        var context = new TestServerCallContext(headers, cancellationToken: cancellationToken);
        context.UserState["__HttpContext"] = HttpContext();
        return context;
    }

    /// <summary>An HTTP request from the bed's client, on its one connection.</summary>
    public DefaultHttpContext HttpContext()
    {
        var http = new DefaultHttpContext();
        http.Features.Set<IConnectionItemsFeature>(new ConnectionItems(_connection));
        http.Connection.Id = "connection-1";
        return http;
    }

    /// <summary>Rewrites the policy file and reloads it, as the reloader does when the file changes.</summary>
    public void ChangePolicy(string keys, string methods = "[Maintenance/Status, Maintenance/Snapshot, Lease/LeaseKeepAlive]")
    {
        File.WriteAllText(_policyFile, PolicyText(keys, methods));
        Assert.Equal(ReloadOutcome.Reloaded, Policy.ReloadIfChanged());
    }

    /// <summary>Every audit record written so far, in order; the audit log is stopped first, so that all are written.</summary>
    public async Task<IReadOnlyList<System.Text.Json.JsonElement>> AuditedAsync()
    {
        await _audit.StopAsync(CancellationToken.None);
        return [.. File.ReadAllLines(Path.Combine(_dir, "audit.log")).Select(line => System.Text.Json.JsonDocument.Parse(line).RootElement)];
    }

    /// <summary>The proxy starts shutting down.</summary>
    public void StopProxy() => _stopping.Cancel();

    /// <summary>The code <c>etcdshield.requests</c> recorded for the last completed call of <paramref name="method"/>.</summary>
    public string? LastCode(string method) =>
        Requests.GetMeasurementSnapshot().LastOrDefault(m => m.Tags["method"] as string == method)?.Tags["code"] as string;

    public void Dispose()
    {
        if (Hub is not null)
        {
            _stopping.Cancel();
            Hub.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        _stopping.Dispose();
        _audit.Dispose();
        Requests.Dispose();
        Denied.Dispose();
        _services.Dispose();
        _ca.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static string PolicyText(string keys, string methods) => $$"""
        identities:
          - name: app
            match: { cn: app }
            methods: {{methods}}
            keys: [{{keys}}]
        """;

    private sealed class ConnectionItems(AdmittedClient client) : IConnectionItemsFeature
    {
        public IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?> { [AdmittedClient.ItemKey] = client };
    }
}

/// <summary>The client's side of a stream: what it sends (the test writes), and what it received.</summary>
internal class ClientStream<T> : IAsyncStreamReader<T>, IServerStreamWriter<T>
{
    private readonly Channel<T> _sent = Channel.CreateUnbounded<T>();
    private readonly Channel<T> _received = Channel.CreateUnbounded<T>();

    public T Current { get; private set; } = default!;

    public WriteOptions? WriteOptions { get; set; }

    /// <summary>What the proxy wrote to the client, in order, as it arrives.</summary>
    public ChannelReader<T> Received => _received.Reader;

    public void Send(T message) => Assert.True(_sent.Writer.TryWrite(message));

    /// <summary>The client closes its side of the stream.</summary>
    public void CloseSending() => _sent.Writer.TryComplete();

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        if (!await _sent.Reader.WaitToReadAsync(cancellationToken))
        {
            return false;
        }

        Current = await _sent.Reader.ReadAsync(cancellationToken);
        return true;
    }

    public Task WriteAsync(T message)
    {
        _received.Writer.TryWrite(message);
        return Task.CompletedTask;
    }

    public virtual Task WriteAsync(T message, CancellationToken cancellationToken) => WriteAsync(message);
}
