using System.Globalization;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using Grpc.Core;
using static EtcdShield.EndToEnd.Encryption.StoredValue;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// An authorized campaigner tries to make the proxy seal a value for one key while etcd stores it under another:
/// with lease 0 etcd's election server grants a lease of its own (the key becomes <c>name/new-lease</c>), with a
/// negative lease Go prints the id as <c>-5</c>, and a Proclaim's leader key may name any key. A value stored under a
/// key it was not sealed for fails authentication and, with it, every read of the election's prefix for everyone.
/// The proxy refuses each of these before anything reaches etcd.
/// </summary>
public sealed class CampaignLeaseMismatchTests(EncryptingProxy etcd) : IClassFixture<EncryptingProxy>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Theory]
    [InlineData(0L)]
    [InlineData(-5L)]
    public async Task A_campaign_without_a_granted_lease_is_refused_and_the_election_stays_readable(long lease)
    {
        var enclosing = ShieldedEtcd.NewPrefix("campaign-lease");
        var name = enclosing + "leader";
        var election = new Election.ElectionClient(etcd.ProxyChannel);
        await etcd.PutAsync(enclosing + "config", "readable-neighbour");

        // Alone in the election, the campaign would win at once and its value would stay until its lease expires.
        var refused = await Assert.ThrowsAsync<RpcException>(() => election.CampaignAsync(
            new CampaignRequest { Name = Utf8(name), Lease = lease, Value = Utf8("planted-candidate") },
            deadline: DateTime.UtcNow + Deadline).ResponseAsync);
        var stored = await etcd.EtcdKv.RangeAsync(Under(enclosing));
        var readerKv = new KV.KVClient(etcd.NewProxyChannel());
        var read = await readerKv.RangeAsync(Under(enclosing));

        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.StartsWith("etcdshield: ", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("lease", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal([enclosing + "config"], stored.Kvs.Select(kv => kv.Key.ToStringUtf8()));
        Assert.Equal(["readable-neighbour"], read.Kvs.Select(kv => kv.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task A_proclaim_for_a_key_that_is_not_the_leaders_is_refused_and_stores_nothing()
    {
        var name = ShieldedEtcd.NewPrefix("proclaim-key") + "leader";
        var election = new Election.ElectionClient(etcd.ProxyChannel);
        var lease = await GrantAsync();
        var campaign = await election.CampaignAsync(new CampaignRequest { Name = Utf8(name), Lease = lease, Value = Utf8("genuine-leader") }, deadline: DateTime.UtcNow + Deadline);
        var elsewhere = name + "/elsewhere";

        // Revision 0 makes etcd's "is the key still the leader's" compare hold for a key that does not exist.
        var otherKey = await Assert.ThrowsAsync<RpcException>(() => election.ProclaimAsync(new ProclaimRequest
        {
            Leader = new LeaderKey { Name = Utf8(name), Key = Utf8(elsewhere), Rev = 0, Lease = lease },
            Value = Utf8("planted"),
        }).ResponseAsync);
        var noLease = await Assert.ThrowsAsync<RpcException>(() => election.ProclaimAsync(new ProclaimRequest
        {
            Leader = new LeaderKey { Name = Utf8(name), Key = campaign.Leader.Key, Rev = campaign.Leader.Rev, Lease = 0 },
            Value = Utf8("moved-to-a-lease-nobody-holds"),
        }).ResponseAsync);
        var stored = await etcd.EtcdKv.RangeAsync(PrefixOf(name));
        var read = await etcd.ProxyKv.RangeAsync(PrefixOf(name));

        Assert.Equal(StatusCode.InvalidArgument, otherKey.StatusCode);
        Assert.StartsWith("etcdshield: ", otherKey.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.InvalidArgument, noLease.StatusCode);
        Assert.StartsWith("etcdshield: ", noLease.Status.Detail, StringComparison.Ordinal);
        Assert.Equal([CandidateKey(name, lease)], stored.Kvs.Select(kv => kv.Key.ToStringUtf8()));
        Assert.Equal(lease, stored.Kvs[0].Lease);
        Assert.Equal(["genuine-leader"], read.Kvs.Select(kv => kv.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task A_genuine_leader_still_proclaims_and_resigns()
    {
        var name = ShieldedEtcd.NewPrefix("proclaim-genuine") + "leader";
        var election = new Election.ElectionClient(etcd.ProxyChannel);
        var lease = await GrantAsync();
        var campaign = await election.CampaignAsync(new CampaignRequest { Name = Utf8(name), Lease = lease, Value = Utf8("first") }, deadline: DateTime.UtcNow + Deadline);

        await election.ProclaimAsync(new ProclaimRequest { Leader = campaign.Leader, Value = Utf8("second") });
        var leader = await election.LeaderAsync(new LeaderRequest { Name = Utf8(name) });
        await election.ResignAsync(new ResignRequest { Leader = campaign.Leader });
        var afterResign = await etcd.EtcdKv.RangeAsync(PrefixOf(name));

        Assert.Equal("second", leader.Kv.Value.ToStringUtf8());
        Assert.Empty(afterResign.Kvs);
    }

    private static string CandidateKey(string name, long lease) => name + "/" + lease.ToString("x", CultureInfo.InvariantCulture);

    private static RangeRequest PrefixOf(string name) => Under(name + "/");

    private static RangeRequest Under(string prefix) =>
        new() { Key = Utf8(prefix), RangeEnd = Utf8(prefix[..^1] + (char)(prefix[^1] + 1)) };

    private async Task<long> GrantAsync() =>
        (await new Lease.LeaseClient(etcd.ProxyChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
}
