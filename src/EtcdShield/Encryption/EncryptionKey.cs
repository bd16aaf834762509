using System.Buffers.Binary;
using System.Security.Cryptography;

namespace EtcdShield.Encryption;

/// <summary>
/// A data key this process generated and may seal with. Nonces are 4 random bytes chosen at creation followed by
/// a 64-bit big-endian counter, so they are unique by construction for as long as the key lives, which is bounded
/// by a write limit of at most 2^32. Only <see cref="CreateAsync"/> makes one for production use, from fresh random
/// bytes: a key is never loaded back for sealing, so no two processes (or restarts) ever share a nonce sequence.
/// </summary>
internal sealed class EncryptionKey : IDisposable
{
    public const int NoncePrefixSize = 4;

    /// <summary>Hard ceiling on seals per key, whatever is configured.</summary>
    public const long MaxWritesCeiling = 1L << 32;

    private readonly uint _noncePrefix;
    private readonly long _firstCounter;
    private long _nextCounter;

    private EncryptionKey(DataKey dataKey, uint noncePrefix, long firstCounter, long maxWrites, long createdTimestamp)
    {
        DataKey = dataKey;
        _noncePrefix = noncePrefix;
        _firstCounter = firstCounter;
        _nextCounter = firstCounter;
        MaxWrites = maxWrites;
        CreatedTimestamp = createdTimestamp;
    }

    /// <summary>The same key for opening; owned by this instance.</summary>
    public DataKey DataKey { get; }

    public long MaxWrites { get; }

    /// <summary><see cref="TimeProvider.GetTimestamp"/> at creation.</summary>
    public long CreatedTimestamp { get; }

    /// <summary>Nonces handed out so far (never more than <see cref="MaxWrites"/>).</summary>
    public long WriteCount => Math.Min(Volatile.Read(ref _nextCounter) - _firstCounter, MaxWrites);

    public bool IsExhausted => Volatile.Read(ref _nextCounter) - _firstCounter >= MaxWrites;

    /// <summary>Generates a data key, wraps it with <paramref name="kek"/> and checks the wrapping round-trips.</summary>
    /// <exception cref="KeyProviderUnavailableException">The KEK failed; no key was created.</exception>
    public static async ValueTask<EncryptionKey> CreateAsync(
        IKeyEncryptionKey kek,
        long maxWrites,
        TimeProvider timeProvider,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(kek);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ValidateMaxWrites(maxWrites);

        byte[] key = GC.AllocateArray<byte>(DataKey.KeySize, pinned: true);
        try
        {
            RandomNumberGenerator.Fill(key);
            byte[] wrapped = await kek.WrapAsync(key, cancellationToken).ConfigureAwait(false);
            if (wrapped is null || wrapped.Length is 0 or > ValueEnvelope.MaxWrappedKeyLength)
            {
                throw new KeyProviderUnavailableException(
                    $"key encryption key \"{kek.Id}\" returned a wrapped data key of unusable length (must be 1..{ValueEnvelope.MaxWrappedKeyLength} bytes)");
            }

            // A KEK that wraps wrongly would make every value written under this key unreadable forever: prove the
            // round trip once per key before the first value depends on it.
            byte[] unwrapped;
            try
            {
                unwrapped = await kek.UnwrapAsync(wrapped, cancellationToken).ConfigureAwait(false);
            }
            catch (KeyUnwrapException ex)
            {
                throw new KeyProviderUnavailableException(
                    $"key encryption key \"{kek.Id}\" cannot unwrap the data key it just wrapped", ex);
            }

            bool roundTrips = CryptographicOperations.FixedTimeEquals(unwrapped, key);
            CryptographicOperations.ZeroMemory(unwrapped);
            if (!roundTrips)
            {
                throw new KeyProviderUnavailableException(
                    $"key encryption key \"{kek.Id}\" unwrapped a different data key than it wrapped");
            }

            DataKey dataKey = new(key, kek.Id, wrapped);
            return new EncryptionKey(dataKey, RandomNoncePrefix(), 0, maxWrites, timeProvider.GetTimestamp());
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Builds a key from fixed bytes and a fixed nonce position, ONLY to reproduce the published test vector.
    /// Never call this outside tests: a fixed key and counter would repeat nonces across processes.
    /// </summary>
    internal static EncryptionKey CreateDeterministicForTestVector(
        ReadOnlySpan<byte> key,
        string kekId,
        ReadOnlySpan<byte> wrappedKey,
        ReadOnlySpan<byte> noncePrefix,
        long counter)
    {
        if (noncePrefix.Length != NoncePrefixSize)
        {
            throw new ArgumentException($"The nonce prefix is {NoncePrefixSize} bytes.", nameof(noncePrefix));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(counter);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(counter, long.MaxValue - MaxWritesCeiling);
        return new EncryptionKey(
            new DataKey(key, kekId, wrappedKey),
            BinaryPrimitives.ReadUInt32BigEndian(noncePrefix),
            counter,
            MaxWritesCeiling,
            TimeProvider.System.GetTimestamp());
    }

    /// <summary>Writes the next unused nonce, or returns false once the write limit is reached.</summary>
    internal bool TryReserveNonce(Span<byte> nonce)
    {
        long counter = Interlocked.Increment(ref _nextCounter) - 1;
        if (counter - _firstCounter >= MaxWrites)
        {
            return false;
        }

        BinaryPrimitives.WriteUInt32BigEndian(nonce, _noncePrefix);
        BinaryPrimitives.WriteInt64BigEndian(nonce[NoncePrefixSize..], counter);
        return true;
    }

    public void Dispose() => DataKey.Dispose();

    internal static void ValidateMaxWrites(long maxWrites)
    {
        if (maxWrites is < 1 or > MaxWritesCeiling)
        {
            throw new ArgumentOutOfRangeException(
                nameof(maxWrites),
                maxWrites,
                $"Writes per data key must be between 1 and {MaxWritesCeiling} (2^32).");
        }
    }

    private static uint RandomNoncePrefix()
    {
        Span<byte> prefix = stackalloc byte[NoncePrefixSize];
        RandomNumberGenerator.Fill(prefix);
        return BinaryPrimitives.ReadUInt32BigEndian(prefix);
    }
}
