using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>Data key lifetime and decryption cache limits, validated when constructed.</summary>
internal sealed record DataKeyOptions
{
    public const long DefaultMaxWritesPerKey = 1L << 30;
    // Every proxy start and every rotation adds a DEK that live values keep referring to until rewritten, so
    // a full LIST can touch thousands; a miss costs a KEK call. An entry is a few hundred bytes plus its ciphers.
    public const int DefaultDecryptionCacheSize = 4096;

    public static readonly TimeSpan DefaultMaxKeyAge = TimeSpan.FromHours(24);
    public static readonly TimeSpan DefaultDecryptionCacheTtl = TimeSpan.FromHours(1);

    private static readonly TimeSpan MaxDuration = TimeSpan.FromDays(366);

    /// <param name="maxWritesPerKey">Values sealed under one data key before a new one is created; at most 2^32.</param>
    /// <param name="maxKeyAge">Age at which the encryption data key is replaced (default 24 h).</param>
    /// <param name="decryptionCacheSize">Unwrapped data keys kept in memory (default 4096).</param>
    /// <param name="decryptionCacheTtl">How long an unwrapped data key is trusted before the KEK is asked again (default 1 h).</param>
    public DataKeyOptions(
        long maxWritesPerKey = DefaultMaxWritesPerKey,
        TimeSpan? maxKeyAge = null,
        int decryptionCacheSize = DefaultDecryptionCacheSize,
        TimeSpan? decryptionCacheTtl = null)
    {
        if (maxWritesPerKey is < 1 or > EncryptionKey.MaxWritesCeiling)
        {
            throw new ArgumentOutOfRangeException(
                nameof(maxWritesPerKey),
                maxWritesPerKey,
                $"Max writes per data key must be between 1 and {EncryptionKey.MaxWritesCeiling} (2^32, the AES-GCM safety ceiling per key); the default is {DefaultMaxWritesPerKey}.");
        }

        TimeSpan age = maxKeyAge ?? DefaultMaxKeyAge;
        if (age <= TimeSpan.Zero || age > MaxDuration)
        {
            throw new ArgumentOutOfRangeException(
                nameof(maxKeyAge),
                age,
                $"Max data key age must be positive and at most {MaxDuration.TotalDays:0} days; the default is {DefaultMaxKeyAge.TotalHours:0} hours.");
        }

        if (decryptionCacheSize is < 1 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(
                nameof(decryptionCacheSize),
                decryptionCacheSize,
                $"The data key cache must hold between 1 and 1000000 keys; the default is {DefaultDecryptionCacheSize}.");
        }

        TimeSpan ttl = decryptionCacheTtl ?? DefaultDecryptionCacheTtl;
        if (ttl <= TimeSpan.Zero || ttl > MaxDuration)
        {
            throw new ArgumentOutOfRangeException(
                nameof(decryptionCacheTtl),
                ttl,
                $"The data key cache TTL must be positive and at most {MaxDuration.TotalDays:0} days; the default is {DefaultDecryptionCacheTtl.TotalHours:0} hour.");
        }

        MaxWritesPerKey = maxWritesPerKey;
        MaxKeyAge = age;
        DecryptionCacheSize = decryptionCacheSize;
        DecryptionCacheTtl = ttl;
    }

    public static DataKeyOptions Default { get; } = new();

    public long MaxWritesPerKey { get; }

    public TimeSpan MaxKeyAge { get; }

    public int DecryptionCacheSize { get; }

    public TimeSpan DecryptionCacheTtl { get; }
}
