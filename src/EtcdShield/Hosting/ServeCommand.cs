using EtcdShield.Configuration;

namespace EtcdShield.Hosting;

/// <summary>The proxy's command line: parse, validate, start, and say clearly why not when it cannot.</summary>
internal static partial class ServeCommand
{
    /// <param name="flags">serve's flags (<see cref="ServeCommandLine.Flags"/>) from every source.</param>
    public static async Task<int> RunAsync(FlagValues flags)
    {
        ShieldOptions options;
        try
        {
            options = ServeCommandLine.ToOptions(flags);
        }
        catch (ConfigurationException e)
        {
            // Every problem at once, one line each, so one run shows all there is to fix.
            foreach (var error in e.Errors)
            {
                await Console.Error.WriteLineAsync($"etcdshield: {error}").ConfigureAwait(false);
            }

            return 2;
        }

        WebApplication app;
        try
        {
            app = ShieldHost.Build(options);
            // Resolve what reads files now, so a bad certificate stops the process before it listens.
            _ = app.Services.GetRequiredService<Tls.ServerTls>();
            _ = app.Services.GetRequiredService<Relay.RelayRoutes>();
            _ = app.Services.GetRequiredService<Audit.AuditLog>();
        }
        catch (ConfigurationException e)
        {
            await Console.Error.WriteLineAsync($"etcdshield: {e.Message}").ConfigureAwait(false);
            return 2;
        }

        await using (app.ConfigureAwait(false))
        {
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("EtcdShield");
            if (options.NoEncryption)
            {
                Log.EncryptionDisabled(logger);
            }

            await app.StartAsync().ConfigureAwait(false);
            var policy = app.Services.GetRequiredService<Reload.ReloadableFiles<Authorization.AccessPolicy>>().Current;
            Log.PolicyLoaded(logger, policy.Source, policy.Identities.Count);
            Log.Listening(logger, options.ListenClientUrls, options.UpstreamEndpoints);
            await app.WaitForShutdownAsync().ConfigureAwait(false);
        }

        return 0;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.Listening, EventName = nameof(EventIds.Listening), Level = LogLevel.Information, Message = "EtcdShield ready: serving clients on {ListenUrls}, relaying to etcd at {Upstream}")]
        public static partial void Listening(ILogger logger, IReadOnlyList<Uri> listenUrls, IReadOnlyList<Uri> upstream);

        [LoggerMessage(EventId = EventIds.PolicyLoaded, EventName = nameof(EventIds.PolicyLoaded), Level = LogLevel.Information, Message = "Policy from {Source}: {Identities} identities")]
        public static partial void PolicyLoaded(ILogger logger, string source, int identities);

        [LoggerMessage(EventId = EventIds.EncryptionDisabled, EventName = nameof(EventIds.EncryptionDisabled), Level = LogLevel.Warning, Message = "--no-encryption: values are relayed and stored in etcd exactly as clients send them, unencrypted")]
        public static partial void EncryptionDisabled(ILogger logger);
    }
}
