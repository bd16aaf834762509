using CsCheck;
using EtcdShield.Authorization;

namespace EtcdShield.Tests.Authorization;

/// <summary>KeyRange against the brute-force key space of <see cref="KeySpaceModel"/>.</summary>
public sealed class KeyRangePropertyTests
{
    internal static readonly Gen<byte[]> Key = Gen.OneOf(KeySpaceModel.GeneratedBytes).Array[0, KeySpaceModel.MaxKeyLength];

    /// <summary>A range_end as clients send it: empty (one key), "\0" (from key on), or any key, after key or not.</summary>
    internal static readonly Gen<byte[]> RangeEnd = Gen.Frequency((1, Gen.Const(Array.Empty<byte>())), (1, Gen.Const(new byte[] { 0 })), (4, Key));

    [Fact]
    public void FromEtcd_selects_exactly_the_keys_etcd_selects()
    {
        Gen.Select(Key, RangeEnd).Sample((key, end) =>
        {
            var range = KeyRange.FromEtcd(key, end);
            return KeySpaceModel.Keys.All(k => KeySpaceModel.InRange(range, k) == KeySpaceModel.SelectedByEtcd(key, end, k));
        }, iter: 2_000);
    }

    [Fact]
    public void A_prefix_holds_exactly_the_keys_that_start_with_it()
    {
        Key.Sample(prefix =>
        {
            var range = KeyRange.Prefix(prefix);
            return KeySpaceModel.Keys.All(k => KeySpaceModel.InRange(range, k) == k.AsSpan().StartsWith(prefix));
        }, iter: 1_000);
    }

    [Fact]
    public void A_single_key_holds_that_key_alone_and_says_so()
    {
        Key.Sample(key =>
        {
            var range = KeyRange.SingleKey(key);
            return range.IsSingleKey && KeySpaceModel.Keys.All(k => KeySpaceModel.InRange(range, k) == k.AsSpan().SequenceEqual(key));
        }, iter: 500);
    }

    [Fact]
    public void Contains_is_inclusion_of_the_key_sets()
    {
        var range = Gen.Select(Key, RangeEnd, (key, end) => KeyRange.FromEtcd(key, end));
        Gen.Select(range, range).Sample((outer, inner) =>
            outer.Contains(inner) == KeySpaceModel.Keys.Where(k => KeySpaceModel.InRange(inner, k)).All(k => KeySpaceModel.InRange(outer, k)),
            iter: 3_000);
    }

    [Fact]
    public void The_whole_keyspace_contains_every_range()
    {
        Gen.Select(Key, RangeEnd).Sample((key, end) => KeyRange.All.Contains(KeyRange.FromEtcd(key, end)), iter: 500);
    }
}
