using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A client opens a watch while its grant covers the key, and keeps the stream open after the operator takes the
/// grant away: the watch must be cancelled as etcd cancels one, nothing written after the change may reach it, and
/// the client's other, still allowed watch on the same stream goes on.
/// </summary>
public sealed class WatchAfterPolicyChangeTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static string Policy(bool secrets) => $$"""
        identities:
          - name: watcher
            match: { cn: watcher }
            keys:
              - { prefix: /open/, permission: read }
        {{(secrets ? "      - { prefix: /secret/, permission: read }" : "")}}
        """;

    [Fact]
    public async Task A_watch_whose_grant_is_removed_is_cancelled_and_sees_nothing_written_after()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy(secrets: true));
        var watcher = proxy.Pki.IssueClient("hostile-watcher", "watcher");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, watcher);
        using var admin = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki);
        var kv = new KV.KVClient(admin);
        await using var watch = new WatchSession(channel);

        // The secret watch lets etcd choose its id, as clientv3 does; the open one names its own.
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/secret/"), RangeEnd = B("/secret0") });
        var secret = await watch.NextAsync(r => r.Created);
        Assert.False(secret.Canceled, secret.ToString());
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/open/"), RangeEnd = B("/open0"), WatchId = 77 });
        Assert.False((await watch.NextAsync(r => r.Created && r.WatchId == 77)).Canceled);
        await kv.PutAsync(new PutRequest { Key = B("/secret/before"), Value = B("seen while granted") });
        await watch.NextAsync(r => r.WatchId == secret.WatchId && r.Events.Any(e => e.Kv.Key == B("/secret/before")));

        await proxy.ReplacePolicyAsync(Policy(secrets: false));

        var cancelled = await watch.NextAsync(r => r.WatchId == secret.WatchId && r.Canceled);
        Assert.StartsWith("rpc error: code = PermissionDenied desc = etcdshield: permission denied: identity \"watcher\"", cancelled.CancelReason, StringComparison.Ordinal);
        Assert.Contains("/secret/", cancelled.CancelReason, StringComparison.Ordinal);
        await kv.PutAsync(new PutRequest { Key = B("/secret/after"), Value = B("must not arrive") });
        await kv.PutAsync(new PutRequest { Key = B("/open/after"), Value = B("still watched") });
        await watch.NextAsync(r => r.WatchId == 77 && r.Events.Any(e => e.Kv.Key == B("/open/after")));
        Assert.DoesNotContain(watch.Received, r => r.Events.Any(e => e.Kv.Key == B("/secret/after")));
    }

    [Fact]
    public async Task A_watch_created_just_before_the_change_is_cancelled_when_etcd_confirms_it()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy(secrets: true));
        var watcher = proxy.Pki.IssueClient("hostile-watcher-late", "watcher");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, watcher);
        using var admin = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki);
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/open/"), RangeEnd = B("/open0"), WatchId = 1 });
        await watch.NextAsync(r => r.Created && r.WatchId == 1);

        // Many watches on the secret prefix, the policy narrowed while etcd is still confirming them: whichever
        // were confirmed before the change are cancelled by the reload, the others when their confirmation comes.
        for (var id = 10; id < 60; id++)
        {
            await watch.CreateAsync(new WatchCreateRequest { Key = B("/secret/"), RangeEnd = B("/secret0"), WatchId = id });
        }

        await proxy.ReplacePolicyAsync(Policy(secrets: false));
        await Eventually.HoldsAsync(
            () => Task.FromResult(watch.Received.Where(r => r.Canceled).Select(r => r.WatchId).ToHashSet()),
            cancelled => Enumerable.Range(10, 50).All(id => cancelled.Contains(id)),
            TimeSpan.FromSeconds(10));

        await new KV.KVClient(admin).PutAsync(new PutRequest { Key = B("/secret/after"), Value = B("must not arrive") });
        await new KV.KVClient(admin).PutAsync(new PutRequest { Key = B("/open/after"), Value = B("still watched") });
        await watch.NextAsync(r => r.WatchId == 1 && r.Events.Any(e => e.Kv.Key == B("/open/after")));
        Assert.DoesNotContain(watch.Received, r => r.Events.Any(e => e.Kv.Key == B("/secret/after")));
        Assert.All(watch.Received.Where(r => r.WatchId >= 10 && r.Canceled), r => Assert.Contains("PermissionDenied", r.CancelReason, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_stream_whose_last_key_grant_is_removed_ends_permission_denied()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy(secrets: true));
        var watcher = proxy.Pki.IssueClient("hostile-watcher-bare", "watcher");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, watcher);
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/open/"), RangeEnd = B("/open0"), WatchId = 1 });
        await watch.NextAsync(r => r.Created && r.WatchId == 1);

        await proxy.ReplacePolicyAsync("""
            identities:
              - name: watcher
                match: { cn: watcher }
                methods: [Maintenance/Status]
            """);

        var ended = await Assert.ThrowsAsync<RpcException>(() => watch.NextAsync(_ => false));
        Assert.Equal(StatusCode.PermissionDenied, ended.StatusCode);
        Assert.Contains("identity \"watcher\"", ended.Status.Detail, StringComparison.Ordinal);
    }
}
