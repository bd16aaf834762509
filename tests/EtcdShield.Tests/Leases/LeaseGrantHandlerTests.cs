using EtcdShield.Authorization;
using EtcdShield.Leases;
using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Core;

namespace EtcdShield.Tests.Leases;

public sealed class LeaseGrantHandlerTests
{
    private static readonly int Tag = LeaseTag.Of("alice");

    private static RpcException Etcd(StatusCode code, string message) => new(new Status(code, message));

    [Fact]
    public async Task The_proxy_chooses_an_id_with_the_callers_tag_and_keeps_the_rest_of_the_request()
    {
        var sent = new List<LeaseGrantRequest>();

        var response = await LeaseGrantHandler.GrantUnderTagAsync(new LeaseGrantRequest { TTL = 30 }, Tag, r =>
        {
            sent.Add(r);
            return Task.FromResult(new LeaseGrantResponse { ID = r.ID, TTL = r.TTL });
        });

        var request = Assert.Single(sent);
        Assert.True(LeaseTag.Carries(request.ID, Tag));
        Assert.Equal(30, request.TTL);
        Assert.Equal(request.ID, response.ID);
    }

    [Fact]
    public async Task A_taken_id_is_drawn_again_with_the_same_tag()
    {
        var sent = new List<long>();

        var response = await LeaseGrantHandler.GrantUnderTagAsync(new LeaseGrantRequest { TTL = 30 }, Tag, r =>
        {
            sent.Add(r.ID);
            return sent.Count < 3
                ? throw Etcd(StatusCode.FailedPrecondition, "etcdserver: lease already exists")
                : Task.FromResult(new LeaseGrantResponse { ID = r.ID });
        });

        Assert.Equal(3, sent.Distinct().Count());
        Assert.All(sent, id => Assert.True(LeaseTag.Carries(id, Tag)));
        Assert.Equal(sent[^1], response.ID);
    }

    [Fact]
    public async Task Retries_are_bounded_and_then_etcds_own_error_stands()
    {
        var attempts = 0;

        var e = await Assert.ThrowsAsync<RpcException>(() => LeaseGrantHandler.GrantUnderTagAsync(new LeaseGrantRequest(), Tag, _ =>
        {
            attempts++;
            throw Etcd(StatusCode.FailedPrecondition, "etcdserver: lease already exists");
        }));

        Assert.Equal(LeaseGrantHandler.Attempts, attempts);
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal("etcdserver: lease already exists", e.Status.Detail);
    }

    [Fact]
    public async Task Any_other_error_is_not_retried()
    {
        var attempts = 0;

        var e = await Assert.ThrowsAsync<RpcException>(() => LeaseGrantHandler.GrantUnderTagAsync(new LeaseGrantRequest(), Tag, _ =>
        {
            attempts++;
            throw Etcd(StatusCode.OutOfRange, "etcdserver: too large lease TTL");
        }));

        Assert.Equal(1, attempts);
        Assert.Equal("etcdserver: too large lease TTL", e.Status.Detail);
    }
}
