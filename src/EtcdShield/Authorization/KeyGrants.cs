namespace EtcdShield.Authorization;

/// <summary>
/// The key ranges one identity may read and write. Grants of the same permission are merged first, so a request
/// spanning two adjacent or overlapping grants is allowed, as etcd's own range permission check does.
/// </summary>
internal sealed class KeyGrants
{
    private readonly KeyRange[] _readable;
    private readonly KeyRange[] _writable;

    public KeyGrants(IEnumerable<(KeyRange Range, KeyPermission Permission)> grants)
    {
        var list = grants.ToList();
        _readable = Merge(list.Where(g => g.Permission.HasFlag(KeyPermission.Read)).Select(g => g.Range));
        _writable = Merge(list.Where(g => g.Permission.HasFlag(KeyPermission.Write)).Select(g => g.Range));
        Everything = Allows(KeyRange.All, KeyPermission.ReadWrite);
    }

    public static KeyGrants None { get; } = new([]);

    public static KeyGrants All { get; } = new([(KeyRange.All, KeyPermission.ReadWrite)]);

    /// <summary>True when every key may be read and written: requests need no range check at all.</summary>
    public bool Everything { get; }

    /// <summary>True when some key may be read.</summary>
    public bool ReadsAny => _readable.Length > 0;

    public bool IsEmpty => _readable.Length == 0 && _writable.Length == 0;

    public bool Allows(KeyRange range, KeyPermission permission) =>
        (!permission.HasFlag(KeyPermission.Read) || Covered(_readable, range)) &&
        (!permission.HasFlag(KeyPermission.Write) || Covered(_writable, range));

    /// <summary>
    /// The merged grants are sorted and disjoint, so only the last one starting at or before the range can hold it:
    /// a binary search, so that checking a request of n keys against g grants costs n log g.
    /// </summary>
    private static bool Covered(KeyRange[] merged, KeyRange range)
    {
        var (low, high) = (0, merged.Length - 1);
        while (low <= high)
        {
            var middle = low + ((high - low) / 2);
            if (merged[middle].Start.AsSpan().SequenceCompareTo(range.Start) <= 0)
            {
                low = middle + 1;
            }
            else
            {
                high = middle - 1;
            }
        }

        return high >= 0 && merged[high].Contains(range);
    }

    /// <summary>Sorts by start and joins ranges that overlap or touch, so containment in the union is containment in one.</summary>
    private static KeyRange[] Merge(IEnumerable<KeyRange> ranges)
    {
        var sorted = ranges.OrderBy(r => r.Start, ByteOrder.Instance).ToList();
        var merged = new List<KeyRange>();
        foreach (var range in sorted)
        {
            if (merged.Count > 0 && Touches(merged[^1], range))
            {
                var last = merged[^1];
                merged[^1] = Join(last, range);
            }
            else
            {
                merged.Add(range);
            }
        }

        return merged.ToArray();
    }

    private static bool Touches(KeyRange first, KeyRange next) =>
        first.End is null || next.Start.AsSpan().SequenceCompareTo(first.End) <= 0;

    private static KeyRange Join(KeyRange first, KeyRange next)
    {
        if (first.End is null || next.End is null)
        {
            return KeyRange.Between(first.Start, null);
        }

        // Not FromEtcd: the joined end can be "\0" (two grants of the empty key), which etcd reads as "no end".
        var end = first.End.AsSpan().SequenceCompareTo(next.End) >= 0 ? first.End : next.End;
        return KeyRange.Between(first.Start, end);
    }

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static readonly ByteOrder Instance = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}
