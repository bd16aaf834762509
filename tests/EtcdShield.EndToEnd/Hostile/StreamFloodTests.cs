using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A client opens watch streams by the thousand, each one an upstream etcd stream the proxy holds for it: an
/// identity with no key to read may open none, and every identity and every connection is held to a limit.
/// </summary>
public sealed class StreamFloodTests
{
    private const string Policy = """
        identities:
          - name: flooder
            match: { cn: flooder }
            keys: [{ prefix: /flood/, permission: read }]
          - name: keyless
            match: { cn: keyless }
            methods: [Lease, Maintenance/Status]
          - name: locker
            match: { cn: locker }
            methods: [Lease]
            keys: [{ prefix: /flood-locks/, permission: readwrite }]
        """;

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Fact]
    public async Task An_identity_without_a_key_grant_cannot_open_a_watch_stream()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy);
        var keyless = proxy.Pki.IssueClient("flood-keyless", "keyless");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, keyless);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var stream = new Watch.WatchClient(channel).Watch(cancellationToken: deadline.Token);

        // Refused at open: the client need not send anything (a write could race the refusal).
        var refused = await Assert.ThrowsAsync<RpcException>(() => stream.ResponseStream.MoveNext());

        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Contains("identity \"keyless\"", refused.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Streams_past_the_per_connection_and_per_identity_limits_are_refused_until_one_closes()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy, ["--max-streams-per-identity", "3", "--max-streams-per-connection", "2"]);
        var flooder = proxy.Pki.IssueClient("flood-flooder", "flooder");
        using var first = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, flooder);
        using var second = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, flooder);
        var held = new List<WatchSession> { await OpenAsync(first), await OpenAsync(first) };
        try
        {
            var perConnection = await RefusedAsync(first);
            Assert.Equal(StatusCode.ResourceExhausted, perConnection.StatusCode);
            Assert.Contains("identity \"flooder\"", perConnection.Status.Detail, StringComparison.Ordinal);
            Assert.Contains("--max-streams-per-connection 2", perConnection.Status.Detail, StringComparison.Ordinal);

            held.Add(await OpenAsync(second));
            var perIdentity = await RefusedAsync(second);
            Assert.Equal(StatusCode.ResourceExhausted, perIdentity.StatusCode);
            Assert.Contains("identity \"flooder\"", perIdentity.Status.Detail, StringComparison.Ordinal);
            Assert.Contains("--max-streams-per-identity 3", perIdentity.Status.Detail, StringComparison.Ordinal);

            // The client resets one of its streams: its place is free again.
            await held[0].DisposeAsync();
            held.RemoveAt(0);
            held.Add(await Eventually.HoldsAsync(
                async () =>
                {
                    try
                    {
                        return await OpenAsync(second);
                    }
                    catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
                    {
                        return null;
                    }
                },
                opened => opened is not null,
                TimeSpan.FromSeconds(10)) ?? throw new InvalidOperationException());
        }
        finally
        {
            foreach (var session in held)
            {
                await session.DisposeAsync();
            }
        }
    }

    [Theory]
    [InlineData("lock")]
    [InlineData("campaign")]
    public async Task Locks_and_campaigns_waiting_for_their_turn_count_against_the_stream_limit(string kind)
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy, ["--max-streams-per-identity", "2"]);
        var locker = proxy.Pki.IssueClient("flood-locker-" + kind, "locker");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, locker);
        var leases = new Lease.LeaseClient(channel);
        var locks = new Protocol.V3lockpb.Lock.LockClient(channel);
        var elections = new Protocol.V3electionpb.Election.ElectionClient(channel);
        var name = B("/flood-locks/" + kind);
        using var waits = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // The first call takes the lock (or the leadership) and returns; the next two wait for it, each on an etcd watch.
        async Task TakeTurnAsync(CancellationToken cancellationToken)
        {
            var lease = (await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, cancellationToken: CancellationToken.None)).ID;
            if (kind == "lock")
            {
                await locks.LockAsync(new Protocol.V3lockpb.LockRequest { Name = name, Lease = lease }, cancellationToken: cancellationToken);
            }
            else
            {
                await elections.CampaignAsync(new Protocol.V3electionpb.CampaignRequest { Name = name, Lease = lease, Value = B("candidate") }, cancellationToken: cancellationToken);
            }
        }

        await TakeTurnAsync(CancellationToken.None);
        var waiting = new[] { TakeTurnAsync(waits.Token), TakeTurnAsync(waits.Token) };
        // Each waiter has written its key under the name before it waits, so once etcd holds three the proxy counts two.
        using var direct = GrpcChannels.ToEtcd(proxy.Etcd);
        var prefix = B(kind == "lock" ? "/flood-locks/lock/" : "/flood-locks/campaign/");
        await Eventually.HoldsAsync(
            async () => (await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = prefix, RangeEnd = B(kind == "lock" ? "/flood-locks/lock0" : "/flood-locks/campaign0"), CountOnly = true })).Count,
            count => count == 3,
            TimeSpan.FromSeconds(20));
        using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var refused = await Assert.ThrowsAsync<RpcException>(() => TakeTurnAsync(quick.Token));

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("--max-streams-per-identity 2", refused.Status.Detail, StringComparison.Ordinal);
        await waits.CancelAsync();
        foreach (var wait in waiting)
        {
            var ended = await Assert.ThrowsAsync<RpcException>(() => wait);
            Assert.Equal(StatusCode.Cancelled, ended.StatusCode);
        }
    }

    [Fact]
    public async Task A_stream_past_the_watch_limit_has_the_next_watch_refused_as_etcd_refuses_one_and_goes_on()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy);
        var flooder = proxy.Pki.IssueClient("flood-watches", "flooder");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, flooder);
        using var admin = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki);
        await using var watch = new WatchSession(channel);
        for (var id = 1; id <= WatchBook.MaxWatches; id++)
        {
            await watch.CreateAsync(new WatchCreateRequest { Key = B("/flood/" + id), WatchId = id });
        }

        await watch.NextAsync(r => r.Created && r.WatchId == WatchBook.MaxWatches, TimeSpan.FromSeconds(60));
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/flood/more"), WatchId = WatchBook.MaxWatches + 1 });

        var refused = await watch.NextAsync(r => r.WatchId == WatchBook.MaxWatches + 1);
        Assert.True(refused is { Created: true, Canceled: true }, refused.ToString());
        Assert.StartsWith("rpc error: code = ResourceExhausted desc = etcdshield: too many watches on one stream", refused.CancelReason, StringComparison.Ordinal);
        Assert.DoesNotContain(watch.Received, r => r.Canceled && r.WatchId <= WatchBook.MaxWatches);
        await new KV.KVClient(admin).PutAsync(new PutRequest { Key = B("/flood/1"), Value = B("still watched") });
        await watch.NextAsync(r => r.WatchId == 1 && r.Events.Any(e => e.Kv.Value == B("still watched")));
    }

    /// <summary>A watch stream the proxy accepted: its first watch is confirmed.</summary>
    private static async Task<WatchSession> OpenAsync(GrpcChannel channel)
    {
        var session = new WatchSession(channel);
        try
        {
            try
            {
                await session.CreateAsync(new WatchCreateRequest { Key = B("/flood/"), RangeEnd = B("/flood0"), WatchId = 1 });
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException)
            {
                // The proxy refused the stream before the write went out; NextAsync reports the stream's status.
            }

            Assert.False((await session.NextAsync(r => r.Created)).Canceled);
            return session;
        }
        catch
        {
            await session.DisposeAsync();
            throw;
        }
    }

    /// <summary>A watch stream the proxy refuses at open, before the client sends anything.</summary>
    private static async Task<RpcException> RefusedAsync(GrpcChannel channel)
    {
        await using var session = new WatchSession(channel);
        return await Assert.ThrowsAsync<RpcException>(() => session.NextAsync(_ => false));
    }
}
