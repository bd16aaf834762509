using System.Runtime.InteropServices;
using EtcdShield.Configuration;

namespace EtcdShield.Hosting;

/// <summary>The proxy's command line: parse, validate, start, and say clearly why not when it cannot.</summary>
internal static partial class ServeCommand
{
    /// <param name="flags">serve's flags (<see cref="ServeCommandLine.Flags"/>) from every source.</param>
    public static async Task<int> RunAsync(FlagValues flags)
    {
        NativeHeap.LimitArenas();
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

        // Until the host installs its own handler (in StartAsync), SIGTERM would end a proxy that is still starting
        // with the runtime's default action, exit 143; a supervisor stopping it then gets exit 0, as after the start.
        using var stopBeforeStart = new CancellationTokenSource();
        using var earlyHandlers = new EarlySignals(stopBeforeStart);

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
            // etcd logs each variable it used; names only here, since a value may be a path or a PIN file's.
            var fromEnvironment = flags.SetBy(FlagSource.Environment);
            var fromFile = flags.SetBy(FlagSource.ConfigFile);
            if (fromEnvironment.Count + fromFile.Count > 0)
            {
                var fromCommandLine = flags.SetBy(FlagSource.CommandLine);
                Log.FlagSources(logger, fromCommandLine, fromEnvironment, fromFile);
            }

            if (options.NoEncryption)
            {
                Log.EncryptionDisabled(logger);
            }

            try
            {
                await app.StartAsync(stopBeforeStart.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopBeforeStart.IsCancellationRequested)
            {
                return 0;
            }

            earlyHandlers.Dispose();
            if (stopBeforeStart.IsCancellationRequested)
            {
                await app.StopAsync().ConfigureAwait(false);
                return 0;
            }

            var policy = app.Services.GetRequiredService<Reload.ReloadableFiles<Authorization.AccessPolicy>>().Current;
            Log.PolicyLoaded(logger, policy.Source, policy.Identities.Count);
            Log.Listening(logger, options.ListenClientUrls, options.UpstreamEndpoints);
            await app.WaitForShutdownAsync().ConfigureAwait(false);
        }

        return 0;
    }

    /// <summary>SIGTERM and SIGINT while the proxy starts: cancel the start instead of the runtime's default exit.</summary>
    private sealed class EarlySignals : IDisposable
    {
        private readonly PosixSignalRegistration[] _registrations;

        public EarlySignals(CancellationTokenSource stop) =>
            _registrations = [.. new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT }.Select(signal => PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true;
                stop.Cancel();
            }))];

        public void Dispose()
        {
            foreach (var registration in _registrations)
            {
                registration.Dispose();
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.FlagSources, EventName = nameof(EventIds.FlagSources), Level = LogLevel.Information, Message = "Flags from the command line: {CommandLine}; from ETCDSHIELD_* variables: {Environment}; from --config-file: {ConfigFile}")]
        public static partial void FlagSources(ILogger logger, IReadOnlyList<string> commandLine, IReadOnlyList<string> environment, IReadOnlyList<string> configFile);

        [LoggerMessage(EventId = EventIds.Listening, EventName = nameof(EventIds.Listening), Level = LogLevel.Information, Message = "EtcdShield ready: serving clients on {ListenUrls}, relaying to etcd at {Upstream}")]
        public static partial void Listening(ILogger logger, IReadOnlyList<Uri> listenUrls, IReadOnlyList<Uri> upstream);

        [LoggerMessage(EventId = EventIds.PolicyLoaded, EventName = nameof(EventIds.PolicyLoaded), Level = LogLevel.Information, Message = "Policy from {Source}: {Identities} identities")]
        public static partial void PolicyLoaded(ILogger logger, string source, int identities);

        [LoggerMessage(EventId = EventIds.EncryptionDisabled, EventName = nameof(EventIds.EncryptionDisabled), Level = LogLevel.Warning, Message = "--no-encryption: values are relayed and stored in etcd exactly as clients send them, unencrypted")]
        public static partial void EncryptionDisabled(ILogger logger);
    }
}
