using System.Security.Cryptography;
using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>
/// Owns the data key used for sealing and the cache of data keys unwrapped for opening. The hot paths read a field
/// or a concurrent dictionary and complete synchronously; KEK calls are single-flight: one wrap per new data key,
/// at most one unwrap per wrapping at a time, however many requests wait for it. Unwrapped keys are found by the
/// whole wrapping an envelope carries, never by its key id alone: an envelope anyone can write to etcd must not
/// decide which key other envelopes get.
/// </summary>
internal sealed partial class DataKeyManager : IDataKeyProvider, IDisposable
{
    // Long enough that a forged wrapping read in a loop costs a KEK call a minute, short enough that a genuine one a
    // provider wrongly refused once is back soon.
    private static readonly TimeSpan MaxRefusalAge = TimeSpan.FromMinutes(1);

    private readonly DataKeyOptions _options;
    private readonly TimeProvider _time;
    private readonly KeyMetrics _metrics;
    private readonly ILogger _logger;
    private readonly DataKeyCache _cache;
    private readonly RefusedWrappings _refused;
    private readonly Lock _gate = new();
    private readonly Dictionary<DataKeyWrapping, PendingUnwrap> _pendingUnwraps = new(DataKeyWrapping.Comparer.Instance);
    private readonly CancellationTokenSource _lifetime = new();
    private volatile KeyRing _keyRing;
    private volatile EncryptionKey? _current;
    private Task<EncryptionKey>? _pendingCreation;
    private bool _disposed;

    public DataKeyManager(
        KeyRing keyRing,
        DataKeyOptions options,
        TimeProvider timeProvider,
        KeyMetrics metrics,
        ILogger<DataKeyManager> logger)
    {
        ArgumentNullException.ThrowIfNull(keyRing);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(logger);
        _keyRing = keyRing;
        _options = options;
        _time = timeProvider;
        _metrics = metrics;
        _logger = logger;
        _cache = new DataKeyCache(options.DecryptionCacheSize, options.DecryptionCacheTtl, timeProvider);
        _refused = new RefusedWrappings(options.DecryptionCacheSize, options.DecryptionCacheTtl < MaxRefusalAge ? options.DecryptionCacheTtl : MaxRefusalAge, timeProvider);
        metrics.ObserveKeys(() => _keyRing.Current.Id, DataKeysByKek);
    }

    public KeyRing KeyRing => _keyRing;

    public ValueTask<EncryptionKey> GetEncryptionKeyAsync(CancellationToken cancellationToken)
    {
        EncryptionKey? current = _current;
        if (current is not null && RotationReasonFor(current, _keyRing) is null)
        {
            return new ValueTask<EncryptionKey>(current);
        }

        return new ValueTask<EncryptionKey>(RotateCoreAsync(force: false, cancellationToken));
    }

    /// <summary>Replaces the encryption data key now (for operators, and after a KEK change).</summary>
    public async Task RotateAsync(CancellationToken cancellationToken) =>
        await RotateCoreAsync(force: true, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Switches to new KEKs. The next write creates a data key under the new current KEK; values wrapped by KEKs
    /// missing from the new ring stop decrypting once their cached data keys expire.
    /// </summary>
    public void ReplaceKeyRing(KeyRing keyRing)
    {
        ArgumentNullException.ThrowIfNull(keyRing);
        KeyRing previous = Interlocked.Exchange(ref _keyRing, keyRing);

        // A KEK found missing may be what the new ring brings (a version another proxy just created).
        lock (_gate)
        {
            _refused.Clear();
        }

        Log.KeyRingReplaced(_logger, previous.Current.Id, keyRing.Current.Id);
    }

    public ValueTask<DataKey> GetDecryptionKeyAsync(EnvelopeHeader header, CancellationToken cancellationToken)
    {
        DataKeyId id = header.DataKeyId;
        DataKey? known = FindKnown(id, header.KekId, header.WrappedKey);
        if (known is not null)
        {
            return new ValueTask<DataKey>(known);
        }

        return new ValueTask<DataKey>(UnwrapSharedAsync(new DataKeyWrapping(id, header.KekId, header.WrappedKey), header.GetKekIdString(), header.WrappedKey.ToArray(), cancellationToken));
    }

    public void Dispose()
    {
        EncryptionKey? current;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            current = _current;
            _current = null;
        }

        _lifetime.Cancel();
        current?.Dispose();
        _cache.Dispose();
        _lifetime.Dispose();
    }

    private string? RotationReasonFor(EncryptionKey? current, KeyRing keyRing)
    {
        if (current is null)
        {
            return "initial";
        }

        if (current.IsExhausted)
        {
            return "write_limit";
        }

        if (_time.GetElapsedTime(current.CreatedTimestamp) >= _options.MaxKeyAge)
        {
            return "age";
        }

        return string.Equals(current.DataKey.KekId, keyRing.Current.Id, StringComparison.Ordinal) ? null : "kek_changed";
    }

    private Task<EncryptionKey> RotateCoreAsync(bool force, CancellationToken cancellationToken)
    {
        TaskCompletionSource<EncryptionKey>? started = null;
        Task<EncryptionKey> creation;
        string? reason = null;
        lock (_gate)
        {
            if (_disposed)
            {
                return Task.FromException<EncryptionKey>(new ObjectDisposedException(nameof(DataKeyManager)));
            }

            if (_pendingCreation is not null)
            {
                // Whatever started it, a creation in flight yields a key newer than any caller has seen.
                creation = _pendingCreation;
            }
            else
            {
                EncryptionKey? current = _current;
                reason = force ? "manual" : RotationReasonFor(current, _keyRing);
                if (reason is null)
                {
                    return Task.FromResult(current!);
                }

                started = new TaskCompletionSource<EncryptionKey>(TaskCreationOptions.RunContinuationsAsynchronously);
                _pendingCreation = creation = started.Task;
            }
        }

        if (started is not null)
        {
            // Not awaited here: the creation belongs to every waiter, so one caller's cancellation must not stop it.
            _ = CreateEncryptionKeyAsync(started, reason!);
        }

        return creation.WaitAsync(cancellationToken);
    }

    private async Task CreateEncryptionKeyAsync(TaskCompletionSource<EncryptionKey> completion, string reason)
    {
        IKeyEncryptionKey kek = _keyRing.Current;
        EncryptionKey? created = null;
        Exception? failure = null;
        System.Diagnostics.Activity? span = KeyTraces.StartWrap(kek.Id);
        try
        {
            created = await EncryptionKey.CreateAsync(kek, _options.MaxWritesPerKey, _time, _lifetime.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            failure = AsProviderFailure(kek, ex);
        }

        KeyTraces.End(span, failure);

        EncryptionKey? retired = null;
        lock (_gate)
        {
            _pendingCreation = null;
            if (created is not null)
            {
                if (_disposed)
                {
                    created.Dispose();
                    created = null;
                    failure = new ObjectDisposedException(nameof(DataKeyManager));
                }
                else
                {
                    retired = _current;
                    _current = created;
                }
            }
        }

        if (created is null)
        {
            Log.DataKeyCreationFailed(_logger, kek.Id, reason, failure);
            completion.SetException(failure!);
            return;
        }

        if (retired is not null)
        {
            _cache.Retain(retired.DataKey);
            retired.Dispose();
        }

        _metrics.DataKeyRotated(reason);
        Log.DataKeyCreated(_logger, created.DataKey.Id, kek.Id, reason);
        completion.SetResult(created);
    }

    /// <summary>The data keys held unwrapped, by KEK: the cache's, and the one sealing writes (never cached while it seals).</summary>
    private Dictionary<string, int> DataKeysByKek()
    {
        Dictionary<string, int> counts = _cache.CountByKek();
        if (_current is { } current)
        {
            counts[current.DataKey.KekId] = counts.GetValueOrDefault(current.DataKey.KekId) + 1;
        }

        return counts;
    }

    private DataKey? FindKnown(DataKeyId id, ReadOnlySpan<byte> kekId, ReadOnlySpan<byte> wrappedKey)
    {
        EncryptionKey? current = _current;
        if (current is not null && current.DataKey.Id == id && !current.DataKey.IsDisposed && current.DataKey.MatchesWrapping(kekId, wrappedKey))
        {
            return current.DataKey;
        }

        return _cache.TryGet(id, kekId, wrappedKey, out DataKey? cached) ? cached : null;
    }

    private Task<DataKey> UnwrapSharedAsync(DataKeyWrapping wrapping, string kekId, byte[] wrappedKey, CancellationToken cancellationToken)
    {
        PendingUnwrap? started = null;
        Task<DataKey> unwrap;
        lock (_gate)
        {
            if (_disposed)
            {
                return Task.FromException<DataKey>(new ObjectDisposedException(nameof(DataKeyManager)));
            }

            DataKey? known = FindKnown(wrapping.Id, System.Text.Encoding.ASCII.GetBytes(kekId), wrappedKey);
            if (known is not null)
            {
                return Task.FromResult(known);
            }

            if (_refused.TryGet(wrapping, out Exception? refusal))
            {
                return Task.FromException<DataKey>(refusal);
            }

            // Only requests carrying exactly the same wrapping share an unwrap: a forged header reusing a real key
            // id gets one of its own, so it can neither poison nor hijack the genuine one.
            if (_pendingUnwraps.TryGetValue(wrapping, out PendingUnwrap? pending))
            {
                unwrap = pending.Completion.Task;
            }
            else
            {
                started = new PendingUnwrap(wrapping, kekId, wrappedKey);
                _pendingUnwraps.Add(wrapping, started);
                unwrap = started.Completion.Task;
            }
        }

        if (started is not null)
        {
            _ = RunUnwrapAsync(started);
        }

        return unwrap.WaitAsync(cancellationToken);
    }

    private async Task RunUnwrapAsync(PendingUnwrap pending)
    {
        DataKeyId id = pending.Wrapping.Id;
        DataKey? key = null;
        Exception? failure = null;
        System.Diagnostics.Activity? span = KeyTraces.StartUnwrap(pending.KekId);
        try
        {
            key = await UnwrapAndVerifyAsync(id, pending.KekId, pending.WrappedKey).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            failure = ex;
        }

        KeyTraces.End(span, failure);

        lock (_gate)
        {
            _pendingUnwraps.Remove(pending.Wrapping);

            // The provider's verdict on these bytes, or its finding no such key (a version of the family may be looked
            // up in the HSM), will not change soon; an outage (KeyUnavailable) may, so it is not kept.
            if (failure is EnvelopeException { Reason: EnvelopeErrorReason.AuthenticationFailed or EnvelopeErrorReason.UnknownKey })
            {
                _refused.Add(pending.Wrapping, failure);
            }
        }

        if (key is not null)
        {
            Log.DataKeyUnwrapped(_logger, id, pending.KekId);
            pending.Completion.SetResult(key);
        }
        else
        {
            Log.DataKeyUnwrapFailed(_logger, id, pending.KekId, failure);
            pending.Completion.SetException(failure!);
        }
    }

    private async Task<DataKey> UnwrapAndVerifyAsync(DataKeyId id, string kekId, byte[] wrappedKey)
    {
        if (!_keyRing.TryGet(kekId, out IKeyEncryptionKey? kek))
        {
            throw new UnknownKeyException(kekId);
        }

        byte[] key;
        try
        {
            key = await kek.UnwrapAsync(wrappedKey, _lifetime.Token).ConfigureAwait(false);
        }
        catch (KeyUnwrapException)
        {
            _metrics.KekUnwrapped("invalid");
            throw;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _metrics.KekUnwrapped("unavailable");
            throw AsProviderFailure(kek, ex);
        }

        try
        {
            if (key is null || key.Length != DataKey.KeySize)
            {
                _metrics.KekUnwrapped("invalid");
                throw new KeyUnwrapException($"key encryption key \"{kekId}\" unwrapped something that is not a data key");
            }

            _metrics.KekUnwrapped("success");

            // The KEK vouches for the wrapped bytes, the id commits the value to one key: a header pairing a real
            // wrapped key with another key's id is a forgery, whatever the ciphertext says.
            if (DataKeyId.Derive(key) != id)
            {
                throw new EnvelopeAuthenticationException("the wrapped data key does not match the key id named in the envelope");
            }

            return _cache.Add(new DataKey(key, kekId, wrappedKey));
        }
        finally
        {
            if (key is not null)
            {
                CryptographicOperations.ZeroMemory(key);
            }
        }
    }

    private static EnvelopeException AsProviderFailure(IKeyEncryptionKey kek, Exception ex) => ex switch
    {
        EnvelopeException envelope => envelope,

        // Foreign exception messages are not ours to vouch for: name the type, keep the exception for the log.
        _ => new KeyProviderUnavailableException($"key encryption key \"{kek.Id}\" failed ({ex.GetType().Name})", ex),
    };

    private sealed class PendingUnwrap(DataKeyWrapping wrapping, string kekId, byte[] wrappedKey)
    {
        public DataKeyWrapping Wrapping { get; } = wrapping;

        public string KekId { get; } = kekId;

        public byte[] WrappedKey { get; } = wrappedKey;

        public TaskCompletionSource<DataKey> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.DataKeyCreated, EventName = nameof(EventIds.DataKeyCreated), Level = LogLevel.Information,
            Message = "Created data key {KeyId} wrapped by key encryption key {KekId} (reason: {Reason})")]
        public static partial void DataKeyCreated(ILogger logger, DataKeyId keyId, string kekId, string reason);

        [LoggerMessage(EventId = EventIds.DataKeyCreationFailed, EventName = nameof(EventIds.DataKeyCreationFailed), Level = LogLevel.Error,
            Message = "Could not create a data key with key encryption key {KekId} (reason: {Reason}); writes to encrypted keys fail until it succeeds")]
        public static partial void DataKeyCreationFailed(ILogger logger, string kekId, string reason, Exception? exception);

        [LoggerMessage(EventId = EventIds.DataKeyUnwrapped, EventName = nameof(EventIds.DataKeyUnwrapped), Level = LogLevel.Debug,
            Message = "Unwrapped data key {KeyId} with key encryption key {KekId}")]
        public static partial void DataKeyUnwrapped(ILogger logger, DataKeyId keyId, string kekId);

        [LoggerMessage(EventId = EventIds.DataKeyUnwrapFailed, EventName = nameof(EventIds.DataKeyUnwrapFailed), Level = LogLevel.Warning,
            Message = "Could not unwrap data key {KeyId} with key encryption key {KekId}")]
        public static partial void DataKeyUnwrapFailed(ILogger logger, DataKeyId keyId, string kekId, Exception? exception);

        [LoggerMessage(EventId = EventIds.KeyRingReplaced, EventName = nameof(EventIds.KeyRingReplaced), Level = LogLevel.Information,
            Message = "Key encryption key changed from {PreviousKekId} to {KekId}; the next write creates a data key under the new one")]
        public static partial void KeyRingReplaced(ILogger logger, string previousKekId, string kekId);
    }
}
