using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Encryption;

/// <summary>
/// Encrypts values on the way into etcd and decrypts them on the way out, failing closed: a value under an
/// encrypted prefix is never returned unless it authenticates (or a migration window explicitly allows it to be
/// plaintext), and nothing is written unless it was sealed. When the data key is at hand both directions complete
/// synchronously, allocating only the output.
/// </summary>
internal sealed partial class ValueProtector : IValueProtector
{
    // A seal can race a rotation (other writers exhausted or retired the key it got) and an open can race a cache
    // eviction. Every miss means other requests made progress, so retrying is safe; the bound only stops a broken
    // provider from spinning. (A provider that is down fails the lookup itself, not through these retries.) Under a
    // loaded machine a writer can lose several races in a row, so the bound is generous.
    private const int MaxKeyAttempts = 64;

    private readonly EncryptionOptions _options;
    private readonly IDataKeyProvider _keys;
    private readonly EncryptionMetrics _metrics;
    private readonly ILogger _logger;

    public ValueProtector(EncryptionOptions options, IDataKeyProvider keys, EncryptionMetrics metrics, ILogger<ValueProtector> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(logger);
        _options = options;
        _keys = keys;
        _metrics = metrics;
        _logger = logger;
    }

    public bool Enabled => true;

    public bool AppliesTo(ReadOnlySpan<byte> etcdKey) => _options.AppliesTo(etcdKey);

    public bool Binds(ReadOnlySpan<byte> etcdKey) => _options.Binds(etcdKey);

    public ValueTask<ByteString> ProtectAsync(ByteString etcdKey, ByteString plaintext, KeyPlace? place, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(etcdKey);
        ArgumentNullException.ThrowIfNull(plaintext);
        if (!_options.AppliesTo(etcdKey.Span))
        {
            return new ValueTask<ByteString>(plaintext);
        }

        if (!_options.Binds(etcdKey.Span))
        {
            place = null;
        }
        else if (place is null)
        {
            // A write path that does not know where the value goes must not produce an unbound value here.
            return ValueTask.FromException<ByteString>(new RpcException(new Status(
                StatusCode.Internal,
                $"etcdshield: refusing to write key {PrintableKey.Quote(etcdKey.Span)} under rollback protection without its place in the key's history")));
        }

        try
        {
            // Refuse what cannot fit even in the smallest envelope before bothering the KEK.
            if (plaintext.Length > _options.MaxValueBytes - ValueEnvelope.MinimumLength)
            {
                throw TooLarge(plaintext.Length, (long)plaintext.Length + ValueEnvelope.MinimumLength);
            }

            ValueTask<EncryptionKey> pending = _keys.GetEncryptionKeyAsync(cancellationToken);
            if (!pending.IsCompletedSuccessfully)
            {
                return ProtectSlowAsync(pending, etcdKey, plaintext, place, cancellationToken);
            }

            return TrySeal(pending.Result, etcdKey, plaintext, place, out ByteString? envelope)
                ? new ValueTask<ByteString>(envelope)
                : ProtectSlowAsync(null, etcdKey, plaintext, place, cancellationToken);
        }
        catch (RpcException ex)
        {
            return ValueTask.FromException<ByteString>(ex);
        }
        catch (EnvelopeException ex)
        {
            return ValueTask.FromException<ByteString>(EncryptFailed(etcdKey, ex));
        }
    }

    public ValueTask<ByteString> UnprotectAsync(ByteString etcdKey, ByteString stored, KeyPlace place, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(etcdKey);
        ArgumentNullException.ThrowIfNull(stored);
        ReadOnlySpan<byte> key = etcdKey.Span;
        if (!_options.AppliesTo(key))
        {
            return new ValueTask<ByteString>(stored);
        }

        // Our envelope of an empty value is not empty, so an empty stored value is plaintext too.
        if (!ValueEnvelope.HasEnvelopePrefix(stored.Span))
        {
            return ReadPlaintext(etcdKey, stored);
        }

        try
        {
            EnvelopeLayout layout = ValueEnvelope.Read(stored.Span);
            CheckPlace(key, layout.Over(stored.Span).Place, place);
            ValueTask<DataKey> pending = LookUp(stored, layout, cancellationToken);
            if (!pending.IsCompletedSuccessfully)
            {
                return UnprotectSlowAsync(pending, etcdKey, stored, layout, cancellationToken);
            }

            return TryOpen(pending.Result, key, stored.Span, layout, out ByteString? plaintext)
                ? new ValueTask<ByteString>(plaintext)
                : UnprotectSlowAsync(null, etcdKey, stored, layout, cancellationToken);
        }
        catch (EnvelopeException ex)
        {
            return ValueTask.FromException<ByteString>(DecryptFailed(etcdKey, ex));
        }
    }

    private async ValueTask<ByteString> ProtectSlowAsync(
        ValueTask<EncryptionKey>? pending,
        ByteString etcdKey,
        ByteString plaintext,
        KeyPlace? place,
        CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            EncryptionKey key;
            try
            {
                key = pending is { } first
                    ? await first.ConfigureAwait(false)
                    : await _keys.GetEncryptionKeyAsync(cancellationToken).ConfigureAwait(false);
                pending = null;
            }
            catch (EnvelopeException ex)
            {
                throw EncryptFailed(etcdKey, ex);
            }
            catch (ObjectDisposedException ex)
            {
                throw EncryptFailed(etcdKey, new KeyProviderUnavailableException("the proxy is shutting down", ex));
            }

            if (TrySeal(key, etcdKey, plaintext, place, out ByteString? envelope))
            {
                return envelope;
            }

            if (attempt == MaxKeyAttempts)
            {
                throw EncryptFailed(etcdKey, new KeyProviderUnavailableException($"no usable data key after {MaxKeyAttempts} attempts"));
            }
        }
    }

    private async ValueTask<ByteString> UnprotectSlowAsync(
        ValueTask<DataKey>? pending,
        ByteString etcdKey,
        ByteString stored,
        EnvelopeLayout layout,
        CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                DataKey key = pending is { } first
                    ? await first.ConfigureAwait(false)
                    : await LookUp(stored, layout, cancellationToken).ConfigureAwait(false);
                pending = null;
                if (TryOpen(key, etcdKey.Span, stored.Span, layout, out ByteString? plaintext))
                {
                    return plaintext;
                }
            }
            catch (EnvelopeException ex)
            {
                throw DecryptFailed(etcdKey, ex);
            }
            catch (ObjectDisposedException ex)
            {
                throw DecryptFailed(etcdKey, new KeyProviderUnavailableException("the proxy is shutting down", ex));
            }

            if (attempt == MaxKeyAttempts)
            {
                throw DecryptFailed(etcdKey, new KeyProviderUnavailableException($"no usable data key after {MaxKeyAttempts} attempts"));
            }
        }
    }

    /// <summary>
    /// Refuses a value found somewhere it was not written for, before any key is looked up: a v2 envelope whose bound
    /// place is not where etcd holds it (an older value put back, or one from another lifetime of the key), or a v1
    /// envelope under a protected prefix outside the migration window. The bound place is authenticated afterwards
    /// with the rest of the header, so a forged place fails there.
    /// </summary>
    private void CheckPlace(ReadOnlySpan<byte> etcdKey, KeyPlace? bound, KeyPlace found)
    {
        if (bound is { } written)
        {
            if (written != found)
            {
                throw new EnvelopePlaceException(
                    EnvelopeErrorReason.RolledBack,
                    $"the value was sealed for {written} but etcd holds it as {found}: it was rolled back or replaced outside the proxy");
            }

            return;
        }

        if (_options.Binds(etcdKey) && !_options.AllowsUnbound(etcdKey))
        {
            throw new EnvelopePlaceException(
                EnvelopeErrorReason.Unbound,
                "the value is not bound to its place in the key's history (a v1 envelope under a rollback protection prefix; re-seal it with etcdshield migrate)");
        }
    }

    private ValueTask<DataKey> LookUp(ByteString stored, EnvelopeLayout layout, CancellationToken cancellationToken) =>
        _keys.GetDecryptionKeyAsync(layout.Over(stored.Span), cancellationToken);

    /// <returns>False when the key was retired or evicted (disposed) between lookup and use: look it up again.</returns>
    private bool TrySeal(EncryptionKey key, ByteString etcdKey, ByteString plaintext, KeyPlace? place, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ByteString? envelope)
    {
        long sealedLength = (long)key.DataKey.HeaderLength + (place is null ? 0 : ValueEnvelope.PlaceLength) + plaintext.Length + ValueEnvelope.TagSize;
        if (sealedLength > _options.MaxValueBytes)
        {
            throw TooLarge(plaintext.Length, sealedLength);
        }

        try
        {
            if (ValueEnvelope.TrySeal(key, etcdKey.Span, plaintext.Span, out byte[]? sealedBytes, place))
            {
                envelope = UnsafeByteOperations.UnsafeWrap(sealedBytes);
                return true;
            }
        }
        catch (ObjectDisposedException)
        {
        }

        envelope = null;
        return false;
    }

    private static bool TryOpen(DataKey key, ReadOnlySpan<byte> etcdKey, ReadOnlySpan<byte> stored, EnvelopeLayout layout, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ByteString? plaintext)
    {
        try
        {
            plaintext = UnsafeByteOperations.UnsafeWrap(ValueEnvelope.Open(key, etcdKey, stored, layout));
            return true;
        }
        catch (ObjectDisposedException)
        {
            plaintext = null;
            return false;
        }
    }

    private ValueTask<ByteString> ReadPlaintext(ByteString etcdKey, ByteString stored)
    {
        // Plaintext is bound to nothing: under rollback protection it is read only inside an unbound window too.
        if (_options.AllowsLegacyPlaintext(etcdKey.Span) && (!_options.Binds(etcdKey.Span) || _options.AllowsUnbound(etcdKey.Span)))
        {
            _metrics.LegacyPlaintextRead();
            Log.LegacyPlaintextRead(_logger, new PrintableKey(etcdKey.Memory, _options.HashKeysInLogs));
            return new ValueTask<ByteString>(stored);
        }

        _metrics.PlaintextRefused();
        Log.PlaintextRefused(_logger, new PrintableKey(etcdKey.Memory, _options.HashKeysInLogs));
        return ValueTask.FromException<ByteString>(new RpcException(new Status(
            StatusCode.DataLoss,
            $"etcdshield: cannot decrypt value of key {PrintableKey.Quote(etcdKey.Span)}: value is not encrypted")));
    }

    private RpcException DecryptFailed(ByteString etcdKey, EnvelopeException ex)
    {
        _metrics.DecryptFailed(ex.Reason);
        Log.DecryptFailed(_logger, new PrintableKey(etcdKey.Memory, _options.HashKeysInLogs), EncryptionMetrics.ReasonTag(ex.Reason), ex);
        string message = $"cannot decrypt value of key {PrintableKey.Quote(etcdKey.Span)}: {ex.Message}";
        return ex.Reason == EnvelopeErrorReason.KeyUnavailable
            ? new RpcException(new Status(StatusCode.Unavailable, "etcdshield: key provider unavailable: " + message))
            : new RpcException(new Status(StatusCode.DataLoss, "etcdshield: " + message));
    }

    private RpcException EncryptFailed(ByteString etcdKey, EnvelopeException ex)
    {
        // Whatever went wrong, nothing was sealed and nothing may be written: the write is retryable.
        _metrics.EncryptFailed(EncryptionMetrics.ReasonTag(ex.Reason));
        Log.EncryptFailed(_logger, new PrintableKey(etcdKey.Memory, _options.HashKeysInLogs), EncryptionMetrics.ReasonTag(ex.Reason), ex);
        return new RpcException(new Status(StatusCode.Unavailable, "etcdshield: key provider unavailable: " + ex.Message));
    }

    private RpcException TooLarge(int plaintextLength, long sealedLength)
    {
        _metrics.EncryptFailed("too_large");
        return new RpcException(new Status(
            StatusCode.ResourceExhausted,
            $"etcdshield: value too large after encryption: {plaintextLength} bytes become {sealedLength}, over the {_options.MaxValueBytes} byte limit"));
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.DecryptFailed, EventName = nameof(EventIds.DecryptFailed), Level = LogLevel.Warning, Message = "Cannot decrypt value of key {EtcdKey}: {Reason}")]
        public static partial void DecryptFailed(ILogger logger, PrintableKey etcdKey, string reason, Exception exception);

        [LoggerMessage(EventId = EventIds.PlaintextRefused, EventName = nameof(EventIds.PlaintextRefused), Level = LogLevel.Warning, Message = "Refused unencrypted value of key {EtcdKey}: it is under an encrypted prefix and outside any legacy plaintext window")]
        public static partial void PlaintextRefused(ILogger logger, PrintableKey etcdKey);

        [LoggerMessage(EventId = EventIds.LegacyPlaintextRead, EventName = nameof(EventIds.LegacyPlaintextRead), Level = LogLevel.Debug, Message = "Returned legacy plaintext value of key {EtcdKey} (migration window)")]
        public static partial void LegacyPlaintextRead(ILogger logger, PrintableKey etcdKey);

        [LoggerMessage(EventId = EventIds.EncryptFailed, EventName = nameof(EventIds.EncryptFailed), Level = LogLevel.Warning, Message = "Cannot encrypt value of key {EtcdKey}: {Reason}; the write was refused")]
        public static partial void EncryptFailed(ILogger logger, PrintableKey etcdKey, string reason, Exception exception);
    }
}
