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
    public EncryptionOptions(
        IEnumerable<ReadOnlyMemory<byte>>? prefixes = null,
        IEnumerable<ReadOnlyMemory<byte>>? legacyPlaintextPrefixes = null,
        int maxValueBytes = DefaultMaxValueBytes)
    {
        Prefixes = Copy(prefixes);
        LegacyPlaintextPrefixes = Copy(legacyPlaintextPrefixes);
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
    }

    public static EncryptionOptions Default { get; } = new();

    public IReadOnlyList<ReadOnlyMemory<byte>> Prefixes { get; }

    public IReadOnlyList<ReadOnlyMemory<byte>> LegacyPlaintextPrefixes { get; }

    public int MaxValueBytes { get; }

    /// <summary><c>--audit-hash-keys</c>: log lines about values name their keys by SHA-256 (clients are still told the key).</summary>
    public bool HashKeysInLogs { get; init; }

    /// <summary>Builds options from UTF-8 text prefixes, as given on the command line.</summary>
    public static EncryptionOptions FromUtf8(
        IEnumerable<string>? prefixes = null,
        IEnumerable<string>? legacyPlaintextPrefixes = null,
        int maxValueBytes = DefaultMaxValueBytes) =>
        new(
            prefixes?.Select(p => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes(p)),
            legacyPlaintextPrefixes?.Select(p => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes(p)),
            maxValueBytes);

    public bool AppliesTo(ReadOnlySpan<byte> etcdKey) => Prefixes.Count == 0 || MatchesAny(Prefixes, etcdKey);

    public bool AllowsLegacyPlaintext(ReadOnlySpan<byte> etcdKey) => MatchesAny(LegacyPlaintextPrefixes, etcdKey);

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
