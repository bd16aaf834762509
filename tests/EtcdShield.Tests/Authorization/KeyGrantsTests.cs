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
}
