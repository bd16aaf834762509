using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Streams;
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

    [Fact]
    public async Task Locks_waiting_for_their_turn_count_against_the_stream_limit()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy, ["--max-streams-per-identity", "2"]);
        var locker = proxy.Pki.IssueClient("flood-locker", "locker");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, locker);
        var leases = new Lease.LeaseClient(channel);
        var locks = new Protocol.V3lockpb.Lock.LockClient(channel);
        async Task<long> LeaseAsync() => (await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
        var name = B("/flood-locks/one");
        using var waits = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // The first Lock takes the lock and returns; the next two wait for it, each on an etcd watch.
        await locks.LockAsync(new Protocol.V3lockpb.LockRequest { Name = name, Lease = await LeaseAsync() });
        var waiting = new[]
        {
            locks.LockAsync(new Protocol.V3lockpb.LockRequest { Name = name, Lease = await LeaseAsync() }, cancellationToken: waits.Token),
            locks.LockAsync(new Protocol.V3lockpb.LockRequest { Name = name, Lease = await LeaseAsync() }, cancellationToken: waits.Token),
        };
        var fourth = await LeaseAsync();
        var refused = await Eventually.HoldsAsync(
            async () =>
            {
                try
                {
                    using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await locks.LockAsync(new Protocol.V3lockpb.LockRequest { Name = name, Lease = fourth }, cancellationToken: quick.Token);
                    return null;
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
                {
                    return e;
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.Cancelled or StatusCode.DeadlineExceeded)
                {
                    // Not yet counted: the two waits had not both reached the proxy.
                    return null;
                }
            },
            e => e is not null,
            TimeSpan.FromSeconds(20));

        Assert.Contains("--max-streams-per-identity 2", refused!.Status.Detail, StringComparison.Ordinal);
        await waits.CancelAsync();
        foreach (var wait in waiting)
        {
            var ended = await Assert.ThrowsAsync<RpcException>(() => wait.ResponseAsync);
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
