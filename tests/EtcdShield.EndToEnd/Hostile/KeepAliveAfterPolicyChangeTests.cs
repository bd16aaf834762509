using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A client keeps a LeaseKeepAlive stream (or an Election Observe stream) open after the operator removed the
/// grant it was opened under: the stream must end PERMISSION_DENIED at once, naming the identity, and renew nothing
/// more.
/// </summary>
public sealed class KeepAliveAfterPolicyChangeTests
{
    private const string Granted = """
        identities:
          - name: renewer
            match: { cn: renewer }
            methods: [Lease, Maintenance/Status]
            keys: [{ prefix: /election/, permission: read }]
        """;

    private const string Removed = """
        identities:
          - name: renewer
            match: { cn: renewer }
            methods: [Maintenance/Status]
            keys: [{ prefix: /elsewhere/, permission: read }]
        """;

    [Fact]
    public async Task A_keep_alive_stream_ends_when_the_lease_methods_are_removed()
    {
        await using var proxy = await ReloadingShield.StartAsync(Granted);
        var renewer = proxy.Pki.IssueClient("hostile-renewer", "renewer");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, renewer);
        var leases = new Lease.LeaseClient(channel);
        var lease = await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        using var keepAlive = leases.LeaseKeepAlive();
        await keepAlive.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = lease.ID });
        Assert.True(await keepAlive.ResponseStream.MoveNext());
        Assert.Equal(lease.ID, keepAlive.ResponseStream.Current.ID);

        await proxy.ReplacePolicyAsync(Removed);

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var ended = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await keepAlive.ResponseStream.MoveNext(deadline.Token))
            {
            }
        });
        Assert.Equal(StatusCode.PermissionDenied, ended.StatusCode);
        Assert.Contains("identity \"renewer\" may not call Lease/LeaseKeepAlive", ended.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_observe_stream_ends_when_the_read_grant_on_the_election_is_removed()
    {
        await using var proxy = await ReloadingShield.StartAsync(Granted);
        var renewer = proxy.Pki.IssueClient("hostile-observer", "renewer");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, renewer);
        using var admin = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki);
        var lease = await new Lease.LeaseClient(admin).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        var election = new Election.ElectionClient(admin);
        await election.CampaignAsync(new CampaignRequest { Name = ByteString.CopyFromUtf8("/election/leader"), Lease = lease.ID, Value = ByteString.CopyFromUtf8("first") });
        using var observe = new Election.ElectionClient(channel).Observe(new LeaderRequest { Name = ByteString.CopyFromUtf8("/election/leader") });
        Assert.True(await observe.ResponseStream.MoveNext());
        Assert.Equal("first", observe.ResponseStream.Current.Kv.Value.ToStringUtf8());

        await proxy.ReplacePolicyAsync(Removed);

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var ended = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await observe.ResponseStream.MoveNext(deadline.Token))
            {
            }
        });
        Assert.Equal(StatusCode.PermissionDenied, ended.StatusCode);
        Assert.Contains("identity \"renewer\" may not read", ended.Status.Detail, StringComparison.Ordinal);
    }
}
