using System.Text;
using EtcdShield.Authorization;

namespace EtcdShield.Tests.Authorization;

public sealed class KeyGrantsTests
{
    private static byte[] B(string text) => Encoding.UTF8.GetBytes(text);

    [Fact]
    public void Read_and_write_are_granted_separately()
    {
        var grants = new KeyGrants([(KeyRange.Prefix(B("/r/")), KeyPermission.Read), (KeyRange.Prefix(B("/w/")), KeyPermission.Write)]);

        Assert.True(grants.Allows(KeyRange.SingleKey(B("/r/x")), KeyPermission.Read));
        Assert.False(grants.Allows(KeyRange.SingleKey(B("/r/x")), KeyPermission.Write));
        Assert.True(grants.Allows(KeyRange.SingleKey(B("/w/x")), KeyPermission.Write));
        Assert.False(grants.Allows(KeyRange.SingleKey(B("/w/x")), KeyPermission.ReadWrite));
        Assert.False(grants.Allows(KeyRange.SingleKey(B("/other")), KeyPermission.Read));
        Assert.False(grants.Everything);
    }

    [Fact]
    public void A_request_spanning_adjacent_grants_is_allowed_as_in_etcd()
    {
        var grants = new KeyGrants([(KeyRange.FromEtcd(B("a"), B("c")), KeyPermission.Read), (KeyRange.FromEtcd(B("c"), B("e")), KeyPermission.Read)]);

        Assert.True(grants.Allows(KeyRange.FromEtcd(B("b"), B("d")), KeyPermission.Read));
        Assert.False(grants.Allows(KeyRange.FromEtcd(B("b"), B("f")), KeyPermission.Read));
    }

    [Fact]
    public void A_gap_between_grants_is_not_bridged()
    {
        var grants = new KeyGrants([(KeyRange.FromEtcd(B("a"), B("c")), KeyPermission.Read), (KeyRange.FromEtcd(B("d"), B("e")), KeyPermission.Read)]);

        Assert.False(grants.Allows(KeyRange.FromEtcd(B("b"), B("dd")), KeyPermission.Read));
        Assert.False(grants.Allows(KeyRange.SingleKey(B("c")), KeyPermission.Read));
    }

    [Fact]
    public void Everything_only_when_every_key_is_read_and_write()
    {
        Assert.True(KeyGrants.All.Everything);
        Assert.False(new KeyGrants([(KeyRange.All, KeyPermission.Read)]).Everything);
        Assert.False(KeyGrants.None.Allows(KeyRange.SingleKey(B("x")), KeyPermission.Read));
    }

    [Fact]
    public void Thousands_of_grants_decide_exactly_as_checking_each_merged_grant_in_turn()
    {
        // Random single keys, prefixes and ranges over a small alphabet, so that grants overlap, touch and leave gaps.
        var random = new Random(16);
        string Word() => new(Enumerable.Range(0, random.Next(1, 4)).Select(_ => (char)('a' + random.Next(0, 4))).ToArray());
        KeyRange Range() => random.Next(0, 3) switch
        {
            0 => KeyRange.SingleKey(B(Word())),
            1 => KeyRange.Prefix(B(Word())),
            _ => KeyRange.FromEtcd(B(Word()), B(Word())),
        };
        var granted = Enumerable.Range(0, 3000).Select(_ => Range()).ToList();
        var grants = new KeyGrants(granted.Select(r => (r, KeyPermission.Read)));

        for (var i = 0; i < 2000; i++)
        {
            var asked = Range();
            Assert.Equal(CoveredByUnion(granted, asked), grants.Allows(asked, KeyPermission.Read));
        }
    }

    /// <summary>Slow and obvious: walks from the range's start, jumping to the furthest end of any grant holding the current key.</summary>
    private static bool CoveredByUnion(List<KeyRange> granted, KeyRange asked)
    {
        var at = asked.Start;
        while (true)
        {
            var holding = granted.Where(g => g.Contains(KeyRange.SingleKey(at))).ToList();
            if (holding.Count == 0)
            {
                return false;
            }

            if (holding.Any(g => g.End is null))
            {
                return true;
            }

            var furthest = holding.Select(g => g.End!).Aggregate((a, b) => a.AsSpan().SequenceCompareTo(b) >= 0 ? a : b);
            if (asked.End is { } end && end.AsSpan().SequenceCompareTo(furthest) <= 0)
            {
                return true;
            }

            at = furthest;
        }
    }
}
