using EtcdShield.Authorization;

namespace EtcdShield.Tests.Authorization;

/// <summary>
/// A brute-force model of etcd's key space over a small alphabet, for property tests of the range arithmetic.
/// Generated keys use the bytes 0x00, 0x01, 0xfe and 0xff (the edges: "\0", the byte after it, and the bytes
/// whose increment carries), at most <see cref="MaxKeyLength"/> long. Every range end derived from them (key +
/// "\0", a prefix's end, with its last byte incremented) is a key over <see cref="Alphabet"/> at most one byte
/// longer, so <see cref="Keys"/> holds every such start and end. That makes the model exact, not a sample: the
/// first key of a range that no grant covers, if there is one, is the range's own start or the end of a grant,
/// and both are enumerated.
/// </summary>
internal static class KeySpaceModel
{
    public const int MaxKeyLength = 3;

    public static readonly byte[] GeneratedBytes = [0x00, 0x01, 0xfe, 0xff];

    public static readonly byte[] Alphabet = [0x00, 0x01, 0x02, 0xfe, 0xff];

    /// <summary>Every key over <see cref="Alphabet"/> of up to <see cref="MaxKeyLength"/> + 1 bytes, the empty key included.</summary>
    public static IReadOnlyList<byte[]> Keys { get; } = Enumerate(MaxKeyLength + 1);

    public static bool InRange(KeyRange range, byte[] key) =>
        key.AsSpan().SequenceCompareTo(range.Start) >= 0 && (range.End is null || key.AsSpan().SequenceCompareTo(range.End) < 0);

    /// <summary>etcd's own reading of key and range_end, with the proxy's rule that an end at or before key means the key.</summary>
    public static bool SelectedByEtcd(byte[] key, byte[] rangeEnd, byte[] candidate) => rangeEnd switch
    {
        [] => candidate.AsSpan().SequenceEqual(key),
        [0] => candidate.AsSpan().SequenceCompareTo(key) >= 0,
        _ when rangeEnd.AsSpan().SequenceCompareTo(key) <= 0 => candidate.AsSpan().SequenceEqual(key),
        _ => candidate.AsSpan().SequenceCompareTo(key) >= 0 && candidate.AsSpan().SequenceCompareTo(rangeEnd) < 0,
    };

    /// <summary>Whether every key of <paramref name="range"/> lies in some grant that gives <paramref name="permission"/>.</summary>
    public static bool Allows(IReadOnlyList<(KeyRange Range, KeyPermission Permission)> grants, KeyRange range, KeyPermission permission) =>
        Keys.Where(k => InRange(range, k)).All(k =>
            (!permission.HasFlag(KeyPermission.Read) || grants.Any(g => g.Permission.HasFlag(KeyPermission.Read) && InRange(g.Range, k))) &&
            (!permission.HasFlag(KeyPermission.Write) || grants.Any(g => g.Permission.HasFlag(KeyPermission.Write) && InRange(g.Range, k))));

    private static List<byte[]> Enumerate(int maxLength)
    {
        var keys = new List<byte[]> { Array.Empty<byte>() };
        var previous = new List<byte[]> { Array.Empty<byte>() };
        for (var length = 1; length <= maxLength; length++)
        {
            previous = previous.SelectMany(p => Alphabet.Select(b => (byte[])[.. p, b])).ToList();
            keys.AddRange(previous);
        }

        return keys;
    }
}
