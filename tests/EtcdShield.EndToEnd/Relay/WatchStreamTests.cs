using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// The Watch stream and call options over a raw gRPC client, where etcdctl cannot reach: several watchers
/// multiplexed on one stream under client-chosen IDs, cancelling one of them, progress notifications and
/// progress requests (which etcd's own grpc-proxy drops), compaction cancelling a watch, and clientv3's
/// <c>hasleader</c> metadata.
/// </summary>
public sealed class WatchStreamTests(WatchStreamTests.Fixture fixture) : IClassFixture<WatchStreamTests.Fixture>, IDisposable
{
    private readonly GrpcChannel channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki);

    public sealed class Fixture : ShieldFixture
    {
        // etcd 3.4 sends progress notifications every ten minutes unless told otherwise.
        private protected override EtcdOptions EtcdOptions => new() { ExtraArguments = ["--experimental-watch-progress-notify-interval=200ms"] };
    }

    private KV.KVClient Kv => new(channel);

    [Fact]
    public async Task Several_watchers_share_one_stream_under_the_ids_the_client_chose()
    {
        await using var watch = new WatchSession(channel);

        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("mux/a"), WatchId = 7 });
        await watch.NextAsync(r => r.Created && r.WatchId == 7);
        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("mux/b/"), RangeEnd = Bytes("mux/b0"), WatchId = 42, PrevKv = true });
        await watch.NextAsync(r => r.Created && r.WatchId == 42);
        await Kv.PutAsync(new PutRequest { Key = Bytes("mux/b/1"), Value = Bytes("first") });
        await Kv.PutAsync(new PutRequest { Key = Bytes("mux/a"), Value = Bytes("alpha") });
        await Kv.PutAsync(new PutRequest { Key = Bytes("mux/b/1"), Value = Bytes("second") });

        var a = await watch.NextAsync(r => r.WatchId == 7 && r.Events.Count > 0);
        var b = watch.Received.Where(r => r.WatchId == 42).SelectMany(r => r.Events).ToList();
        while (b.Count < 2)
        {
            b.AddRange((await watch.NextAsync(r => r.WatchId == 42 && r.Events.Count > 0)).Events);
        }

        var onlyA = Assert.Single(a.Events);
        Assert.Equal("mux/a", onlyA.Kv.Key.ToStringUtf8());
        Assert.Equal("alpha", onlyA.Kv.Value.ToStringUtf8());
        Assert.Equal(["first", "second"], b.Select(e => e.Kv.Value.ToStringUtf8()));
        Assert.Equal("first", b[1].PrevKv.Value.ToStringUtf8());
        Assert.DoesNotContain(watch.Received, r => r.WatchId is not (7 or 42));
    }

    [Fact]
    public async Task Cancelling_one_watcher_leaves_the_others_on_the_stream_running()
    {
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("cancel/k"), WatchId = 1 });
        await watch.NextAsync(r => r.Created && r.WatchId == 1);
        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("cancel/k"), WatchId = 2 });
        await watch.NextAsync(r => r.Created && r.WatchId == 2);

        await watch.SendAsync(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = 1 } });
        var cancelled = await watch.NextAsync(r => r.Canceled);
        var cancelledAt = watch.Received.Count;
        await Kv.PutAsync(new PutRequest { Key = Bytes("cancel/k"), Value = Bytes("one") });
        await Kv.PutAsync(new PutRequest { Key = Bytes("cancel/k"), Value = Bytes("two") });
        await watch.NextAsync(r => r.WatchId == 2 && r.Events.Any(e => e.Kv.Value.ToStringUtf8() == "two"));

        // etcd sends each revision's events to all its watchers before the next revision's, on one ordered
        // stream: had watcher 1 survived, its event for "one" would have come before watcher 2's "two".
        Assert.Equal(1, cancelled.WatchId);
        Assert.DoesNotContain(watch.Received.Skip(cancelledAt), r => r.WatchId == 1);
        Assert.Equal(["one", "two"], watch.Received.Where(r => r.WatchId == 2).SelectMany(r => r.Events).Select(e => e.Kv.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task A_progress_request_is_answered_with_the_current_revision()
    {
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("progress/request"), WatchId = 5 });
        await watch.NextAsync(r => r.Created);
        var revision = (await Kv.PutAsync(new PutRequest { Key = Bytes("progress/other"), Value = Bytes("x") })).Header.Revision;

        await watch.SendAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() });
        var progress = await watch.NextAsync(r => !r.Created && !r.Canceled && r.Events.Count == 0 && r.Header.Revision >= revision);

        // etcd 3.4 answers for the whole stream (watch_id -1) with the store's current revision.
        Assert.Equal(-1, progress.WatchId);
        Assert.Empty(progress.Events);
        Assert.Equal(revision, progress.Header.Revision);
    }

    [Fact]
    public async Task Progress_notifications_reach_a_watcher_that_asked_for_them()
    {
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("progress/notify"), WatchId = 9, ProgressNotify = true });
        await watch.NextAsync(r => r.Created && r.WatchId == 9);

        var notification = await watch.NextAsync(r => r.WatchId == 9 && !r.Created && !r.Canceled && r.Events.Count == 0);

        Assert.True(notification.Header.Revision > 0);
    }

    [Fact]
    public async Task A_watch_from_a_compacted_revision_is_cancelled_with_the_compact_revision()
    {
        var first = (await Kv.PutAsync(new PutRequest { Key = Bytes("compacted/k"), Value = Bytes("1") })).Header.Revision;
        await Kv.PutAsync(new PutRequest { Key = Bytes("compacted/k"), Value = Bytes("2") });
        var compactAt = (await Kv.PutAsync(new PutRequest { Key = Bytes("compacted/k"), Value = Bytes("3") })).Header.Revision;
        await Kv.CompactAsync(new CompactionRequest { Revision = compactAt, Physical = true });
        await using var watch = new WatchSession(channel);

        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("compacted/k"), StartRevision = first, WatchId = 3 });
        var cancelled = await watch.NextAsync(r => r.Canceled);

        Assert.Equal(3, cancelled.WatchId);
        Assert.Equal(compactAt, cancelled.CompactRevision);
        Assert.Empty(cancelled.Events);
    }

    [Fact]
    public async Task A_watch_that_requires_a_leader_through_hasleader_metadata_works()
    {
        // clientv3.WithRequireLeader sends this; etcd then refuses to serve watches while it has no leader.
        await using var watch = new WatchSession(channel, new Metadata { { "hasleader", "true" } });
        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("leader/k"), WatchId = 11 });
        await watch.NextAsync(r => r.Created && r.WatchId == 11);

        await Kv.PutAsync(new PutRequest { Key = Bytes("leader/k"), Value = Bytes("led") }, new Metadata { { "hasleader", "true" } });
        var changed = await watch.NextAsync(r => r.Events.Count > 0);

        Assert.Equal("led", Assert.Single(changed.Events).Kv.Value.ToStringUtf8());
    }

    [Fact]
    public async Task An_open_watch_ends_with_unavailable_as_soon_as_the_proxy_shuts_down()
    {
        // A proxy of its own, over the shared etcd: this test stops it.
        var shield = await ShieldServer.StartAsync(fixture.Pki, fixture.Etcd.ClientUrl);
        var stopping = Task.CompletedTask;
        try
        {
            using var own = GrpcClients.Channel(shield.ClientUrl, fixture.Pki);
            await using var watch = new WatchSession(own);
            await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("shutdown/k"), WatchId = 1 });
            await watch.NextAsync(r => r.Created);

            stopping = shield.DisposeAsync().AsTask();

            // As when etcd itself stops: the stream ends at once with a status clientv3 retries elsewhere, instead of
            // the shutdown waiting for it until the host gives up.
            var ended = await Assert.ThrowsAsync<RpcException>(() => watch.NextAsync(_ => false, TimeSpan.FromSeconds(15)));
            Assert.True(ended.StatusCode == StatusCode.Unavailable && ended.Status.Detail == "etcdshield: shutting down", $"ended with {ended.Status}; proxy log: {string.Join(" | ", shield.Logs.Entries.Where(e => e.Level >= LogLevel.Warning).Select(e => e.Category + ": " + e.Message + " " + e.Exception))}");
        }
        finally
        {
            if (stopping == Task.CompletedTask)
            {
                await shield.DisposeAsync();
            }

            await stopping;
        }
    }

    public void Dispose() => channel.Dispose();

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);
}
