using System.Text;

namespace EtcdShield.Encryption;

/// <summary>Which etcd keys have their values encrypted, and the limits the relay imposes. Validated when constructed.</summary>
internal sealed record EncryptionOptions
{
    /// <summary>etcd's default <c>--max-request-bytes</c> (1.5 MiB).</summary>
    public const int DefaultMaxValueBytes = 1536 * 1024;

    /// <param name="prefixes">Key prefixes whose values are encrypted; empty (the default) means every key.</param>
    /// <param name="legacyPlaintextPrefixes">
    /// Migration window: unencrypted values under these prefixes are returned as is (and counted) instead of
    /// refused. Each must overlap an encrypted prefix.
    /// </param>
    /// <param name="maxValueBytes">Largest value the proxy may write after encryption (set from etcd's request limit).</param>
    /// <param name="rollbackProtectedPrefixes">
    /// Values under these prefixes are sealed bound to their place in the key's history (envelope v2). Each must lie
    /// under an encrypted prefix.
    /// </param>
    /// <param name="legacyUnboundPrefixes">
    /// Migration window: v1 envelopes under these protected prefixes are returned instead of refused.
    /// Each must overlap a protected prefix.
    /// </param>
    public EncryptionOptions(
        IEnumerable<ReadOnlyMemory<byte>>? prefixes = null,
        IEnumerable<ReadOnlyMemory<byte>>? legacyPlaintextPrefixes = null,
        int maxValueBytes = DefaultMaxValueBytes,
        IEnumerable<ReadOnlyMemory<byte>>? rollbackProtectedPrefixes = null,
        IEnumerable<ReadOnlyMemory<byte>>? legacyUnboundPrefixes = null)
    {
        Prefixes = Copy(prefixes);
        LegacyPlaintextPrefixes = Copy(legacyPlaintextPrefixes);
        RollbackProtectedPrefixes = Copy(rollbackProtectedPrefixes);
        LegacyUnboundPrefixes = Copy(legacyUnboundPrefixes);
        if (maxValueBytes < ValueEnvelope.MinimumLength)
        {
            throw new ArgumentOutOfRangeException(
                nameof(maxValueBytes),
                maxValueBytes,
                $"The maximum value size must be at least {ValueEnvelope.MinimumLength} bytes (the smallest envelope); set it from etcd's --max-request-bytes (default {DefaultMaxValueBytes}).");
        }

        MaxValueBytes = maxValueBytes;
        foreach (ReadOnlyMemory<byte> legacy in LegacyPlaintextPrefixes)
        {
            if (!OverlapsEncryptedPrefix(legacy.Span))
            {
                throw new ArgumentException(
                    $"Legacy plaintext prefix {PrintableKey.Quote(legacy.Span)} does not overlap any encrypted prefix, so it would have no effect; remove it or encrypt that prefix.",
                    nameof(legacyPlaintextPrefixes));
            }
        }

        foreach (ReadOnlyMemory<byte> protectedPrefix in RollbackProtectedPrefixes)
        {
            if (!AppliesTo(protectedPrefix.Span))
            {
                throw new ArgumentException(
                    $"Rollback protection prefix {PrintableKey.Quote(protectedPrefix.Span)} is not under an encrypted prefix; only encrypted values can be bound to their place. Encrypt it too, or give a prefix under an encrypted one.",
                    nameof(rollbackProtectedPrefixes));
            }
        }

        foreach (ReadOnlyMemory<byte> unbound in LegacyUnboundPrefixes)
        {
            if (!Overlaps(RollbackProtectedPrefixes, unbound.Span))
            {
                throw new ArgumentException(
                    $"Legacy unbound prefix {PrintableKey.Quote(unbound.Span)} does not overlap any rollback protection prefix, so it would have no effect; remove it.",
                    nameof(legacyUnboundPrefixes));
            }
        }
    }

    public static EncryptionOptions Default { get; } = new();

    public IReadOnlyList<ReadOnlyMemory<byte>> Prefixes { get; }

    public IReadOnlyList<ReadOnlyMemory<byte>> LegacyPlaintextPrefixes { get; }

    public IReadOnlyList<ReadOnlyMemory<byte>> RollbackProtectedPrefixes { get; }

    public IReadOnlyList<ReadOnlyMemory<byte>> LegacyUnboundPrefixes { get; }

    public int MaxValueBytes { get; }

    /// <summary><c>--audit-hash-keys</c>: log lines about values name their keys by SHA-256 (clients are still told the key).</summary>
    public bool HashKeysInLogs { get; init; }

    /// <summary>Builds options from UTF-8 text prefixes, as given on the command line.</summary>
    public static EncryptionOptions FromUtf8(
        IEnumerable<string>? prefixes = null,
        IEnumerable<string>? legacyPlaintextPrefixes = null,
        int maxValueBytes = DefaultMaxValueBytes,
        IEnumerable<string>? rollbackProtectedPrefixes = null,
        IEnumerable<string>? legacyUnboundPrefixes = null) =>
        new(
            Utf8(prefixes),
            Utf8(legacyPlaintextPrefixes),
            maxValueBytes,
            Utf8(rollbackProtectedPrefixes),
            Utf8(legacyUnboundPrefixes));

    public bool AppliesTo(ReadOnlySpan<byte> etcdKey) => Prefixes.Count == 0 || MatchesAny(Prefixes, etcdKey);

    public bool AllowsLegacyPlaintext(ReadOnlySpan<byte> etcdKey) => MatchesAny(LegacyPlaintextPrefixes, etcdKey);

    /// <summary>Whether values of this key are sealed bound to their place in its history (envelope v2).</summary>
    public bool Binds(ReadOnlySpan<byte> etcdKey) => AppliesTo(etcdKey) && MatchesAny(RollbackProtectedPrefixes, etcdKey);

    public bool AllowsUnbound(ReadOnlySpan<byte> etcdKey) => MatchesAny(LegacyUnboundPrefixes, etcdKey);

    /// <summary>These options with every protected prefix also a legacy unbound window: how <c>migrate</c> reads the v1 values it re-seals.</summary>
    public EncryptionOptions ReadingUnbound() =>
        new(Prefixes, LegacyPlaintextPrefixes, MaxValueBytes, RollbackProtectedPrefixes, RollbackProtectedPrefixes) { HashKeysInLogs = HashKeysInLogs };

    private static IEnumerable<ReadOnlyMemory<byte>>? Utf8(IEnumerable<string>? prefixes) =>
        prefixes?.Select(p => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes(p));

    private static bool Overlaps(IReadOnlyList<ReadOnlyMemory<byte>> prefixes, ReadOnlySpan<byte> other)
    {
        foreach (ReadOnlyMemory<byte> prefix in prefixes)
        {
            if (other.StartsWith(prefix.Span) || prefix.Span.StartsWith(other))
            {
                return true;
            }
        }

        return false;
    }

    private bool OverlapsEncryptedPrefix(ReadOnlySpan<byte> legacy)
    {
        if (Prefixes.Count == 0)
        {
            return true;
        }

        foreach (ReadOnlyMemory<byte> prefix in Prefixes)
        {
            if (legacy.StartsWith(prefix.Span) || prefix.Span.StartsWith(legacy))
            {
                return true;
            }
        }

        return false;
    }

    private static bool MatchesAny(IReadOnlyList<ReadOnlyMemory<byte>> prefixes, ReadOnlySpan<byte> etcdKey)
    {
        for (int i = 0; i < prefixes.Count; i++)
        {
            if (etcdKey.StartsWith(prefixes[i].Span))
            {
                return true;
            }
        }

        return false;
    }

    private static ReadOnlyMemory<byte>[] Copy(IEnumerable<ReadOnlyMemory<byte>>? prefixes) =>
        prefixes is null ? [] : [.. prefixes.Select(p => (ReadOnlyMemory<byte>)p.ToArray())];
}
