using EtcdShield.Concurrency;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Tests.Concurrency;

public sealed class SessionKeyTests
{
    [Theory]
    [InlineData(1L, "lk/1")]
    [InlineData(0x694d7c4f1a2b3c4dL, "lk/694d7c4f1a2b3c4d")]
    [InlineData(long.MaxValue, "lk/7fffffffffffffff")]
    public void Names_the_key_as_gos_percent_x_prints_a_positive_lease(long lease, string expected)
    {
        Assert.Equal(expected, SessionKey.For(ByteString.CopyFromUtf8("lk"), lease).ToStringUtf8());
    }

    [Fact]
    public void Keeps_every_byte_of_a_binary_name()
    {
        var key = SessionKey.For(ByteString.CopyFrom(0x00, 0xff, 0x2f), 0xab);

        Assert.Equal(new byte[] { 0x00, 0xff, 0x2f, 0x2f, 0x61, 0x62 }, key.ToByteArray());
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-5L)]
    [InlineData(long.MinValue)]
    public void Refuses_a_lease_for_which_etcd_would_name_another_key(long lease)
    {
        var refused = Assert.Throws<RpcException>(() => SessionKey.RequireGrantedLease(lease, "campaign"));

        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.StartsWith("etcdshield: campaign needs the id of a lease granted to the caller", refused.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Accepts_the_leader_key_a_campaign_returns()
    {
        var name = ByteString.CopyFromUtf8("/app/leader");

        SessionKey.RequireLeaderKey(name, ByteString.CopyFromUtf8("/app/leader/2a"), 0x2a, "proclaim");
    }

    [Theory]
    [InlineData("/app/leader/elsewhere", 0x2a)]
    [InlineData("/app/leader/2b", 0x2a)]
    [InlineData("/app/leader/2A", 0x2a)]
    [InlineData("/app/leader/002a", 0x2a)]
    [InlineData("/app/other/2a", 0x2a)]
    [InlineData("/app/leader/0", 0)]
    [InlineData("/app/leader/-5", -5)]
    [InlineData("/app/leader/fffffffffffffffb", -5)]
    public void Refuses_a_leader_key_that_is_not_its_name_and_lease(string key, long lease)
    {
        var refused = Assert.Throws<RpcException>(() =>
            SessionKey.RequireLeaderKey(ByteString.CopyFromUtf8("/app/leader"), ByteString.CopyFromUtf8(key), lease, "proclaim"));

        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.StartsWith("etcdshield: proclaim needs ", refused.Status.Detail, StringComparison.Ordinal);
    }
}
