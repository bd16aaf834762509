using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;

namespace EtcdShield.Reload;

/// <summary>
/// Looks at the reloadable files every reload interval, and at once on SIGHUP, and applies what changed.
/// Connections already open keep the TLS session they have; requests use the new policy from their next call.
/// A file that fails to load is reported (error log, metric, /health) and the last good version stays.
/// </summary>
internal sealed partial class ConfigurationReloader : BackgroundService
{
    /// <summary>The "Reload" feature's meter; this class is its only owner.</summary>
    public const string MeterName = "EtcdShield.Reload";

    private readonly IReadOnlyList<IReloadable> _sources;
    private readonly IReadOnlyList<IReloadObserver> _observers;
    private readonly TimeSpan _interval;
    private readonly ILogger _logger;
    private readonly Counter<long> _reloads;
    private readonly SemaphoreSlim _signal = new(0);
    private PosixSignalRegistration? _hangup;

    public ConfigurationReloader(IEnumerable<IReloadable> sources, IEnumerable<IReloadObserver> observers, Configuration.ShieldOptions options, IMeterFactory meters, ILogger<ConfigurationReloader> logger)
    {
        _sources = sources.ToList();
        _observers = observers.ToList();
        _interval = options.ReloadInterval;
        _logger = logger;
        _reloads = meters.Create(MeterName).CreateCounter<long>(
            "etcdshield.config.reloads", unit: "{reload}", description: "Reloads of certificates, CAs, CRLs and the policy after their files changed, by source and result (reloaded or failed).");
        // Every source and result exported from the start, so that an alert's increase() counts the first failure too.
        foreach (var source in _sources)
        {
            _reloads.Add(0, new("source", source.Name), new("result", "reloaded"));
            _reloads.Add(0, new("source", source.Name), new("result", "failed"));
        }
    }

    /// <summary>Checks every source now; what SIGHUP and the timer do. Returns what happened to each changed source.</summary>
    public IReadOnlyDictionary<string, ReloadOutcome> ReloadNow()
    {
        var outcomes = new Dictionary<string, ReloadOutcome>(StringComparer.Ordinal);
        foreach (var source in _sources)
        {
            var outcome = source.ReloadIfChanged();
            outcomes[source.Name] = outcome;
            switch (outcome)
            {
                case ReloadOutcome.Reloaded:
                    Log.Reloaded(_logger, source.Name, source.Paths);
                    _reloads.Add(1, new("source", source.Name), new("result", "reloaded"));
                    break;
                case ReloadOutcome.Failed:
                    Log.ReloadFailed(_logger, source.Name, source.LastError ?? "");
                    _reloads.Add(1, new("source", source.Name), new("result", "failed"));
                    break;
                default:
                    break;
            }
        }

        NotifyObservers();
        return outcomes;
    }

    private void NotifyObservers()
    {
        foreach (var observer in _observers)
        {
            observer.FilesChecked();
        }
    }

    /// <summary>
    /// Takes SIGHUP before the host reports that it started: since .NET 10 a BackgroundService's ExecuteAsync runs
    /// wholly in the background, so a handler registered there could miss a SIGHUP sent as soon as the proxy is up.
    /// </summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _hangup = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            // SIGHUP means "reload" to every daemon an operator knows; it must not stop the process.
            context.Cancel = true;
            _signal.Release();
        });
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        NotifyObservers();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await _signal.WaitAsync(_interval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                ReloadNow();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The reload loop is a BackgroundService: an exception escaping it would stop the host.
                Log.ReloadLoopFailed(_logger, e);
            }
        }
    }

    public override void Dispose()
    {
        _hangup?.Dispose();
        _signal.Dispose();
        base.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.Reloaded, EventName = nameof(EventIds.Reloaded), Level = LogLevel.Information, Message = "Reloaded the {Source} from {Files}")]
        public static partial void Reloaded(ILogger logger, string source, IReadOnlyList<string> files);

        [LoggerMessage(EventId = EventIds.ReloadFailed, EventName = nameof(EventIds.ReloadFailed), Level = LogLevel.Error, Message = "Could not reload the {Source}; still using the last good version: {Reason}")]
        public static partial void ReloadFailed(ILogger logger, string source, string reason);

        [LoggerMessage(EventId = EventIds.ReloadLoopFailed, EventName = nameof(EventIds.ReloadLoopFailed), Level = LogLevel.Error, Message = "Checking the reloadable files failed; the current configuration stays and the next check tries again")]
        public static partial void ReloadLoopFailed(ILogger logger, Exception exception);
    }
}
