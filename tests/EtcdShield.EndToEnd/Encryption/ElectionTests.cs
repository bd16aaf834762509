using System.Globalization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using Grpc.Core;
using static EtcdShield.EndToEnd.Encryption.StoredValue;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// The election service writes values server-side, at <c>name/lease-id-in-hex</c>: the proxy seals Campaign
/// and Proclaim values to that key, so etcd holds envelopes, and opens them again for Leader and Observe.
/// </summary>
public sealed class ElectionTests(EncryptingProxy etcd) : IClassFixture<EncryptingProxy>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Campaign_and_proclaim_store_envelopes_at_the_candidate_key_and_leader_returns_the_plaintext()
    {
        var name = ShieldedEtcd.NewPrefix("election") + "leader";
        var election = new Election.ElectionClient(etcd.ProxyChannel);
        var lease = await GrantAsync();

        var campaign = await election.CampaignAsync(new CampaignRequest { Name = Utf8(name), Lease = lease, Value = Utf8("candidate-value-a") }, deadline: DateTime.UtcNow + Deadline);
        var candidateKey = name + "/" + lease.ToString("x", CultureInfo.InvariantCulture);
        var storedAfterCampaign = await etcd.StoredAsync(candidateKey);
        var leaderAfterCampaign = await election.LeaderAsync(new LeaderRequest { Name = Utf8(name) });
        await election.ProclaimAsync(new ProclaimRequest { Leader = campaign.Leader, Value = Utf8("proclaimed-value-b") });
        var storedAfterProclaim = await etcd.StoredAsync(candidateKey);
        var leaderAfterProclaim = await election.LeaderAsync(new LeaderRequest { Name = Utf8(name) });

        Assert.Equal(candidateKey, campaign.Leader.Key.ToStringUtf8());
        AssertSealed(storedAfterCampaign, "candidate-value-a");
        AssertSealed(storedAfterProclaim, "proclaimed-value-b");
        Assert.Equal("candidate-value-a", leaderAfterCampaign.Kv.Value.ToStringUtf8());
        Assert.Equal("proclaimed-value-b", leaderAfterProclaim.Kv.Value.ToStringUtf8());
        Assert.Equal(candidateKey, leaderAfterProclaim.Kv.Key.ToStringUtf8());
        Assert.Equal("proclaimed-value-b", await etcd.GetAsync(candidateKey));
    }

    [Fact]
    public async Task A_waiting_candidate_is_sealed_too_and_observers_see_every_leader_value_in_plaintext()
    {
        var name = ShieldedEtcd.NewPrefix("observe") + "leader";
        var election = new Election.ElectionClient(etcd.ProxyChannel);
        var first = await GrantAsync();
        var second = await GrantAsync();
        var firstCampaign = await election.CampaignAsync(new CampaignRequest { Name = Utf8(name), Lease = first, Value = Utf8("first-leader") }, deadline: DateTime.UtcNow + Deadline);
        using var observe = election.Observe(new LeaderRequest { Name = Utf8(name) }, deadline: DateTime.UtcNow + Deadline);
        var observed = new List<string> { await NextValueAsync(observe) };

        // The second candidate's key is written at once, but its Campaign only returns when the first resigns.
        var secondKey = name + "/" + second.ToString("x", CultureInfo.InvariantCulture);
        await using var created = await WatchStream.OpenAsync(etcd.EtcdChannel, new WatchCreateRequest { Key = Utf8(secondKey) });
        var secondCampaign = election.CampaignAsync(new CampaignRequest { Name = Utf8(name), Lease = second, Value = Utf8("second-leader") }, deadline: DateTime.UtcNow + Deadline);
        var waiting = (await created.ReadEventsAsync(1))[0];
        Assert.False(secondCampaign.ResponseAsync.IsCompleted);
        await election.ProclaimAsync(new ProclaimRequest { Leader = firstCampaign.Leader, Value = Utf8("first-leader-again") });
        observed.Add(await NextValueAsync(observe));
        await election.ResignAsync(new ResignRequest { Leader = firstCampaign.Leader });
        var secondLeader = await secondCampaign;
        observed.Add(await NextValueAsync(observe));
        var leader = await election.LeaderAsync(new LeaderRequest { Name = Utf8(name) });

        AssertSealed(waiting.Kv.Value, "second-leader");
        Assert.Equal(secondKey, secondLeader.Leader.Key.ToStringUtf8());
        Assert.Equal(["first-leader", "first-leader-again", "second-leader"], observed);
        Assert.Equal("second-leader", leader.Kv.Value.ToStringUtf8());
        AssertSealed(await etcd.StoredAsync(secondKey), "second-leader");
    }

    private async Task<long> GrantAsync() =>
        (await new Lease.LeaseClient(etcd.ProxyChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;

    private static async Task<string> NextValueAsync(AsyncServerStreamingCall<LeaderResponse> observe)
    {
        Assert.True(await observe.ResponseStream.MoveNext(CancellationToken.None), "the observe stream ended");
        return observe.ResponseStream.Current.Kv.Value.ToStringUtf8();
    }
}
