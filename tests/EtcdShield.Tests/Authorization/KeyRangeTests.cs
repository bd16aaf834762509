using System.Text;
using EtcdShield.Authorization;

namespace EtcdShield.Tests.Authorization;

public sealed class KeyRangeTests
{
    private static byte[] B(string text) => Encoding.UTF8.GetBytes(text);

    [Fact]
    public void Range_end_follows_etcd_empty_is_one_key_nul_is_open_ended()
    {
        Assert.True(KeyRange.FromEtcd(B("a"), []).IsSingleKey);
        Assert.Null(KeyRange.FromEtcd(B("a"), [0]).End);
        Assert.Equal(B("b"), KeyRange.FromEtcd(B("a"), B("b")).End);
    }

    [Fact]
    public void A_range_end_before_the_key_needs_the_key_itself()
    {
        var backwards = KeyRange.FromEtcd(B("m"), B("a"));

        Assert.True(backwards.IsSingleKey);
        Assert.Equal(B("m"), backwards.Start);
    }

    [Theory]
    [InlineData("/registry/", "/registry0")]
    [InlineData("a\u007f", "a\u0080")]
    public void Prefix_ends_at_the_next_prefix(string prefix, string end) =>
        Assert.Equal(Encoding.Latin1.GetBytes(end), KeyRange.Prefix(Encoding.Latin1.GetBytes(prefix)).End);

    [Fact]
    public void Prefix_of_all_0xff_or_empty_has_no_end()
    {
        Assert.Null(KeyRange.Prefix([0xff, 0xff]).End);
        Assert.Null(KeyRange.Prefix([]).End);
    }

    [Fact]
    public void Containment_is_byte_wise_and_respects_open_ends()
    {
        var registry = KeyRange.Prefix(B("/registry/"));

        Assert.True(registry.Contains(KeyRange.SingleKey(B("/registry/pods/a"))));
        Assert.True(registry.Contains(KeyRange.Prefix(B("/registry/secrets/"))));
        Assert.True(registry.Contains(registry));
        Assert.False(registry.Contains(KeyRange.SingleKey(B("/registry"))));
        Assert.False(registry.Contains(KeyRange.FromEtcd(B("/registry/"), [0])));
        Assert.False(registry.Contains(KeyRange.FromEtcd(B("/registry/x"), B("/s"))));
        Assert.True(KeyRange.All.Contains(KeyRange.FromEtcd([0], [0])));
    }

    [Fact]
    public void Describes_keys_without_ever_breaking_a_log_line()
    {
        Assert.Equal("key \"/a\"", KeyRange.SingleKey(B("/a")).ToString());
        Assert.Equal("prefix \"/registry/\"", KeyRange.Prefix(B("/registry/")).ToString());
        Assert.Equal("range [\"a\", \"c\")", KeyRange.FromEtcd(B("a"), B("c")).ToString());
        Assert.Equal("every key", KeyRange.All.ToString());
        Assert.Equal("key 0x0a01", KeyRange.SingleKey([0x0a, 0x01]).ToString());
    }
}
