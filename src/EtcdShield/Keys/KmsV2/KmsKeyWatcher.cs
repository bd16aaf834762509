using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EtcdShield.Keys.KmsV2;

/// <summary>
/// Polls the plugin's Status, as Kubernetes API servers do, and switches new writes to a new data key under the
/// plugin's new key as soon as its key_id changes; values under earlier keys keep decrypting through the plugin.
/// </summary>
internal sealed partial class KmsKeyWatcher : BackgroundService
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMinutes(1);

    private readonly KmsPlugin _plugin;
    private readonly DataKeyManager _keys;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _checking = new(1, 1);

    public KmsKeyWatcher(KmsPlugin plugin, DataKeyManager keys, TimeProvider time, ILogger<KmsKeyWatcher> logger)
    {
        _plugin = plugin;
        _keys = keys;
        _time = time;
        _logger = logger;
    }

    public TimeSpan Interval { get; init; } = DefaultInterval;

    /// <summary>Asks the plugin now; returns true when its key changed and new writes moved to it.</summary>
    public async Task<bool> CheckNowAsync(CancellationToken cancellationToken)
    {
        await _checking.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var status = await _plugin.StatusAsync(cancellationToken).ConfigureAwait(false);
            if (!string.Equals(status.Healthz, "ok", StringComparison.Ordinal))
            {
                Log.Unhealthy(_logger, _plugin.Endpoint, status.Healthz);
            }

            var ring = _keys.KeyRing;
            var kekId = KmsKeyEncryptionKey.IdFor(status.KeyId);
            if (string.IsNullOrEmpty(status.KeyId) || string.Equals(kekId, ring.Current.Id, StringComparison.Ordinal))
            {
                return false;
            }

            _keys.ReplaceKeyRing(_plugin.RingFor(status.KeyId, [ring.Current]));
            Log.Rotated(_logger, ring.Current.Id, kekId);
            return true;
        }
        finally
        {
            _checking.Release();
        }
    }

    public override void Dispose()
    {
        _checking.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, _time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                await CheckNowAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Grpc.Core.RpcException e)
            {
                // Writes that need a new data key will fail UNAVAILABLE on their own; this only reports it.
                Log.StatusFailed(_logger, _plugin.Endpoint, e.StatusCode, e.Status.Detail);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1400, Level = LogLevel.Information, Message = "KMS plugin key changed from {Previous} to {Current}: new writes use a data key wrapped by the new key")]
        public static partial void Rotated(ILogger logger, string previous, string current);

        [LoggerMessage(EventId = 1401, Level = LogLevel.Warning, Message = "KMS plugin {Endpoint} reports healthz '{Healthz}'")]
        public static partial void Unhealthy(ILogger logger, string endpoint, string healthz);

        [LoggerMessage(EventId = 1402, Level = LogLevel.Warning, Message = "KMS plugin {Endpoint} status check failed: {Code}: {Detail}")]
        public static partial void StatusFailed(ILogger logger, string endpoint, Grpc.Core.StatusCode code, string detail);
    }
}
