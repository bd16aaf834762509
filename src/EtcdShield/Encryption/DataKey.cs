using System.Security.Cryptography;

namespace EtcdShield.Encryption;

/// <summary>
/// A data key that can open envelopes. It cannot seal: only <see cref="EncryptionKey"/>, which owns the nonce
/// sequence and is only ever created from fresh random bytes, can. Keys unwrapped from stored values are always
/// plain <see cref="DataKey"/>s, so a key loaded back from etcd can never reuse a nonce.
/// </summary>
internal sealed class DataKey : IDisposable
{
    public const int KeySize = 32;

    private readonly byte[] _key;
    private readonly byte[] _id;
    private readonly byte[] _headerPrefix;
    private readonly int _wrappedKeyOffset;
    private readonly AesGcmPool _ciphers;
    private int _disposed;

    /// <summary>Copies <paramref name="key"/>; the caller zeroes its own copy.</summary>
    public DataKey(ReadOnlySpan<byte> key, string kekId, ReadOnlySpan<byte> wrappedKey)
    {
        if (key.Length != KeySize)
        {
            throw new ArgumentException($"A data key is {KeySize} bytes.", nameof(key));
        }

        ArgumentNullException.ThrowIfNull(kekId);

        // Pinned so the GC never leaves copies of the key behind in memory it moved it from.
        _key = GC.AllocateArray<byte>(KeySize, pinned: true);
        key.CopyTo(_key);
        Id = DataKeyId.Derive(_key);
        _id = Id.ToArray();
        KekId = kekId;
        _headerPrefix = ValueEnvelope.CreateHeaderPrefix(Id, kekId, wrappedKey, out _wrappedKeyOffset);
        _ciphers = new AesGcmPool(_key);
    }

    public DataKeyId Id { get; }

    /// <summary>The id bytes, for constant-time comparison with an envelope's key id.</summary>
    public ReadOnlySpan<byte> IdBytes => _id;

    /// <summary>The id of the key-encryption key that wrapped this key.</summary>
    public string KekId { get; }

    public ReadOnlySpan<byte> WrappedKey => _headerPrefix.AsSpan(_wrappedKeyOffset);

    /// <summary>Magic through wrapped key: every header byte of an envelope sealed under this key except the nonce.</summary>
    internal ReadOnlySpan<byte> HeaderPrefix => _headerPrefix;

    /// <summary>The full header length, nonce included.</summary>
    public int HeaderLength => _headerPrefix.Length + ValueEnvelope.NonceSize;

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Whether an envelope naming this key also carries this key's KEK id and wrapped bytes.</summary>
    public bool MatchesWrapping(ReadOnlySpan<byte> kekId, ReadOnlySpan<byte> wrappedKey)
    {
        ReadOnlySpan<byte> prefix = _headerPrefix;
        int kekIdOffset = ValueEnvelope.KekIdOffset;
        int kekIdLength = prefix[kekIdOffset - 1];
        return prefix.Slice(kekIdOffset, kekIdLength).SequenceEqual(kekId) && WrappedKey.SequenceEqual(wrappedKey);
    }

    /// <summary>A second, independently owned instance of the same key (for a cache that disposes on eviction).</summary>
    public DataKey Duplicate()
    {
        DataKey copy = new(_key, KekId, WrappedKey);

        // Same race as the cipher pool: the copy is only trustworthy if we were not disposed while copying.
        Interlocked.MemoryBarrier();
        if (IsDisposed)
        {
            copy.Dispose();
            throw new ObjectDisposedException(nameof(DataKey));
        }

        return copy;
    }

    internal AesGcm RentCipher() => _ciphers.Rent();

    internal void ReturnCipher(AesGcm cipher) => _ciphers.Return(cipher);

    /// <summary>
    /// Zeroes the key (best effort: the AES implementation may hold its own copies until its instances are freed,
    /// which happens here for pooled ones and on return for rented ones). Operations already holding a cipher finish.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _ciphers.Dispose();
            CryptographicOperations.ZeroMemory(_key);
        }
    }
}
