using System.Text;
using Google.Protobuf;

namespace EtcdShield.Authorization;

/// <summary>
/// A half-open interval of etcd keys [Start, End), compared as unsigned bytes as etcd does. A null End means
/// "every key from Start on" (etcd's range_end of "\0").
/// </summary>
internal sealed class KeyRange
{
    private KeyRange(byte[] start, byte[]? end)
    {
        Start = start;
        End = end;
    }

    public byte[] Start { get; }

    /// <summary>Exclusive end; null for no end.</summary>
    public byte[]? End { get; }

    public static KeyRange All { get; } = new([], null);

    /// <summary>
    /// The keys an etcd request names with key and range_end: one key when range_end is empty, every key from
    /// key on when range_end is "\0", and [key, range_end) otherwise. A range_end at or before key selects no key
    /// in etcd; it is treated as the single key, so asking for it never needs less permission than the key itself.
    /// </summary>
    public static KeyRange FromEtcd(ByteString key, ByteString rangeEnd) => FromEtcd(key.Span, rangeEnd.Span);

    public static KeyRange FromEtcd(ReadOnlySpan<byte> key, ReadOnlySpan<byte> rangeEnd)
    {
        if (rangeEnd.IsEmpty)
        {
            return SingleKey(key);
        }

        if (rangeEnd.Length == 1 && rangeEnd[0] == 0)
        {
            return new KeyRange(key.ToArray(), null);
        }

        return rangeEnd.SequenceCompareTo(key) <= 0 ? SingleKey(key) : new KeyRange(key.ToArray(), rangeEnd.ToArray());
    }

    /// <summary>
    /// [start, end) exactly as given, for arithmetic on ranges: unlike <see cref="FromEtcd(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>,
    /// an end of "\0" is the key "\0" (so ["", "\0") is the empty key alone), not "no end". End must follow start.
    /// </summary>
    internal static KeyRange Between(byte[] start, byte[]? end) => new(start, end);

    public static KeyRange SingleKey(ReadOnlySpan<byte> key)
    {
        // The smallest key after `key` is key + "\0", so [key, key\0) holds exactly one key.
        var end = new byte[key.Length + 1];
        key.CopyTo(end);
        return new KeyRange(key.ToArray(), end);
    }

    /// <summary>Every key that starts with <paramref name="prefix"/> (etcd's <c>--prefix</c>).</summary>
    public static KeyRange Prefix(ReadOnlySpan<byte> prefix) => new(prefix.ToArray(), PrefixEnd(prefix));

    public bool IsSingleKey => End is { } end && end.Length == Start.Length + 1 && end[^1] == 0 && end.AsSpan(0, Start.Length).SequenceEqual(Start);

    /// <summary>The first key after every key with this prefix; null when there is none (all 0xff, or empty).</summary>
    internal static byte[]? PrefixEnd(ReadOnlySpan<byte> prefix)
    {
        for (var i = prefix.Length - 1; i >= 0; i--)
        {
            if (prefix[i] < 0xff)
            {
                var end = prefix[..(i + 1)].ToArray();
                end[i]++;
                return end;
            }
        }

        return null;
    }

    /// <summary>True when <paramref name="other"/> lies entirely inside this range.</summary>
    public bool Contains(KeyRange other) =>
        Start.AsSpan().SequenceCompareTo(other.Start) <= 0 && EndAtLeast(other.End);

    private bool EndAtLeast(byte[]? otherEnd) =>
        End is null || (otherEnd is not null && otherEnd.AsSpan().SequenceCompareTo(End) <= 0);

    /// <summary>How a log line or an error names the range: the key, or [start, end), printable bytes as text.</summary>
    public override string ToString() => Describe(key => Printable(key));

    /// <summary>The range in words, each key named by <paramref name="name"/> (e.g. hashed for --audit-hash-keys).</summary>
    internal string Describe(Func<byte[], string> name)
    {
        if (IsSingleKey)
        {
            return $"key {name(Start)}";
        }

        if (End is null)
        {
            // etcd spells "every key" as key "\0" with range_end "\0" (keys cannot be empty).
            return Start is [] or [0] ? "every key" : $"keys from {name(Start)} on";
        }

        return PrefixEnd(Start) is { } prefixEnd && prefixEnd.AsSpan().SequenceEqual(End)
            ? $"prefix {name(Start)}"
            : $"range [{name(Start)}, {name(End)})";
    }

    /// <summary>Keys are usually paths; anything else is shown as hex so that logs stay one line and readable.</summary>
    internal static string Printable(ReadOnlySpan<byte> key)
    {
        const int MaxShown = 128;
        var shown = key.Length > MaxShown ? key[..MaxShown] : key;
        var text = shown.ContainsAnyExceptInRange((byte)0x20, (byte)0x7e) || shown.Contains((byte)'"')
            ? "0x" + Convert.ToHexStringLower(shown)
            : $"\"{Encoding.ASCII.GetString(shown)}\"";
        return key.Length > MaxShown ? text + "…" : text;
    }
}
