using CsCheck;
using EtcdShield.Authorization;

namespace EtcdShield.Tests.Authorization;

/// <summary>
/// KeyGrants (merging, then containment in one merged grant) against the brute-force key space of
/// <see cref="KeySpaceModel"/>: a request is allowed exactly when every key it names is in some grant.
/// </summary>
public sealed class KeyGrantsPropertyTests
{
    private static readonly Gen<KeyPermission> Permission = Gen.OneOf(KeyPermission.Read, KeyPermission.Write, KeyPermission.ReadWrite);

    /// <summary>The shapes a policy grants: one key, a prefix, key with range_end (incl. "\0"), everything.</summary>
    private static readonly Gen<KeyRange> GrantRange = Gen.Frequency(
        (3, KeyRangePropertyTests.Key.Select(k => KeyRange.SingleKey(k))),
        (3, KeyRangePropertyTests.Key.Select(k => KeyRange.Prefix(k))),
        (4, Gen.Select(KeyRangePropertyTests.Key, KeyRangePropertyTests.RangeEnd, (key, end) => KeyRange.FromEtcd(key, end))),
        (1, Gen.Const(KeyRange.All)));

    private static readonly Gen<(KeyRange Range, KeyPermission Permission)[]> Grants = Gen.Select(GrantRange, Permission).Array[0, 5];

    private static readonly Gen<KeyRange> Request = Gen.Frequency(
        (4, Gen.Select(KeyRangePropertyTests.Key, KeyRangePropertyTests.RangeEnd, (key, end) => KeyRange.FromEtcd(key, end))),
        (2, KeyRangePropertyTests.Key.Select(k => KeyRange.Prefix(k))),
        (1, Gen.Const(KeyRange.All)));

    [Fact]
    public void Allows_is_true_exactly_when_every_requested_key_is_granted()
    {
        Gen.Select(Grants, Request, Permission).Sample((grants, request, permission) =>
            new KeyGrants(grants).Allows(request, permission) == KeySpaceModel.Allows(grants, request, permission),
            iter: 5_000);
    }

    [Fact]
    public void The_order_of_grants_does_not_matter()
    {
        Gen.Select(Grants, Request, Permission).Sample((grants, request, permission) =>
            new KeyGrants(grants).Allows(request, permission) == new KeyGrants(grants.Reverse()).Allows(request, permission),
            iter: 2_000);
    }

    [Fact]
    public void Adjacent_grants_allow_a_request_across_their_border_and_no_further()
    {
        var three = Gen.Select(KeyRangePropertyTests.Key, KeyRangePropertyTests.Key, KeyRangePropertyTests.Key)
            .Select((a, b, c) => new[] { a, b, c }.OrderBy(k => k, ByteOrder.Instance).ToArray())
            // As a range_end, "\0" means "no end": not a border between two grants.
            .Where(k => k[0].AsSpan().SequenceCompareTo(k[1]) < 0 && k[1].AsSpan().SequenceCompareTo(k[2]) < 0 && k[1] is not [0] && k[2] is not [0]);
        three.Sample(k =>
        {
            var grants = new KeyGrants([(KeyRange.FromEtcd(k[0], k[1]), KeyPermission.Read), (KeyRange.FromEtcd(k[1], k[2]), KeyPermission.Read)]);
            return grants.Allows(KeyRange.FromEtcd(k[0], k[2]), KeyPermission.Read)
                && !grants.Allows(KeyRange.FromEtcd(k[0], "\0"u8), KeyPermission.Read)
                && !grants.Allows(KeyRange.SingleKey(k[2]), KeyPermission.Read);
        }, iter: 1_000);
    }

    [Fact]
    public void Everything_means_every_key_may_be_read_and_written()
    {
        Grants.Sample(grants =>
            new KeyGrants(grants).Everything == KeySpaceModel.Allows(grants, KeyRange.All, KeyPermission.ReadWrite),
            iter: 3_000);
    }

    [Fact]
    public void Two_grants_of_the_empty_key_do_not_merge_into_the_whole_keyspace()
    {
        // Found by the model: merging joined [""] and [""] into ["", "\0"), which as a range_end means "no end".
        var grants = new KeyGrants([(KeyRange.SingleKey([]), KeyPermission.Read), (KeyRange.SingleKey([]), KeyPermission.ReadWrite)]);

        Assert.True(grants.Allows(KeyRange.SingleKey([]), KeyPermission.Read));
        Assert.False(grants.Allows(KeyRange.SingleKey("a"u8), KeyPermission.Read));
        Assert.False(grants.Allows(KeyRange.All, KeyPermission.Read));
    }

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static readonly ByteOrder Instance = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}
