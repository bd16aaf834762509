using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>
/// Keeps a running proxy on the newest KEK: every <c>interval</c> it loads the key ring again (for PKCS#11, the
/// highest version of the KEK family in the token) and, when the current KEK changed, swaps the ring in and
/// replaces the sealing data key at once, so the next write is wrapped by the new KEK. Values under older KEKs
/// keep decrypting: the new ring holds them, and its resolver finds any other KEK still in the provider.
/// </summary>
internal sealed partial class KeyRingRefresher : BackgroundService
{
    private readonly Func<CancellationToken, Task<KeyRing>> _load;
    private readonly DataKeyManager _manager;
    private readonly TimeSpan _interval;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _checking = new(1, 1);
    private volatile string? _lastFailure;

    public KeyRingRefresher(
        Func<CancellationToken, Task<KeyRing>> load,
        DataKeyManager manager,
        TimeSpan interval,
        TimeProvider timeProvider,
        ILogger<KeyRingRefresher> logger)
    {
        ArgumentNullException.ThrowIfNull(load);
        ArgumentNullException.ThrowIfNull(manager);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        _load = load;
        _manager = manager;
        _interval = interval;
        _time = timeProvider;
        _logger = logger;
    }

    /// <summary>
    /// Why the last check could not reach the key provider (the provider's message, never key material), or null
    /// when it answered; readiness reports it.
    /// </summary>
    public string? LastFailure => _lastFailure;

    /// <summary>
    /// Loads the ring now and switches to it if its current KEK differs. Returns whether it switched. A provider
    /// that cannot be reached keeps the ring in use (logged), since its KEKs are as good as they were.
    /// </summary>
    public async Task<bool> CheckNowAsync(CancellationToken cancellationToken)
    {
        await _checking.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            KeyRing loaded;
            try
            {
                loaded = await _load(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is KeyProviderUnavailableException or TimeoutException)
            {
                if (_lastFailure is null)
                {
                    Log.CheckFailed(_logger, _manager.KeyRing.Current.Id, ex);
                }

                _lastFailure = ex.Message;
                return false;
            }

            _lastFailure = null;
            string previous = _manager.KeyRing.Current.Id;
            if (string.Equals(loaded.Current.Id, previous, StringComparison.Ordinal))
            {
                return false;
            }

            _manager.ReplaceKeyRing(loaded);
            try
            {
                await _manager.RotateAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is Encryption.EnvelopeException)
            {
                // The ring is switched: the next write makes the data key under the new KEK, or fails closed.
                Log.RotationDeferred(_logger, loaded.Current.Id, ex);
            }

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
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_interval, _time, stoppingToken).ConfigureAwait(false);
                await CheckNowAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A failed check must not stop the proxy (a faulted background service stops the host): the ring in
                // use stays valid, and the next check tries again.
                Log.CheckCrashed(_logger, ex);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.CheckFailed, EventName = nameof(EventIds.CheckFailed), Level = LogLevel.Warning,
            Message = "Could not check the key provider for a newer key encryption key; {KekId} stays current until it answers")]
        public static partial void CheckFailed(ILogger logger, string kekId, Exception exception);

        [LoggerMessage(EventId = EventIds.RotationDeferred, EventName = nameof(EventIds.RotationDeferred), Level = LogLevel.Warning,
            Message = "Switched to key encryption key {KekId}, but could not create a data key under it yet; the next write tries again")]
        public static partial void RotationDeferred(ILogger logger, string kekId, Exception exception);

        [LoggerMessage(EventId = EventIds.CheckCrashed, EventName = nameof(EventIds.CheckCrashed), Level = LogLevel.Error,
            Message = "Checking the key provider for a newer key encryption key failed unexpectedly; the next check tries again")]
        public static partial void CheckCrashed(ILogger logger, Exception exception);
    }
}
