using EtcdShield.Configuration;
using EtcdShield.Tests.Relay;
using Grpc.Core;
using Noput = EtcdShield.Protocol.Etcdserverpb.WatchCreateRequest.Types.FilterType;

namespace EtcdShield.Tests.Watches;

/// <summary>
/// Client watches served from shared upstream watches, against the in-memory etcd's watch service: one upstream
/// watch per range, and on every client stream etcd's own answers: ids, created, cancels, filters, prev_kv and
/// start revisions.
/// </summary>
public sealed class WatchSharingTests : IDisposable
{
    private readonly RelayBed _bed = new(watches: new ShieldOptions());
    private readonly WatchEtcd _etcd;

    public WatchSharingTests() => _etcd = new WatchEtcd(_bed.Etcd);

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task Identical_watches_on_two_streams_share_one_upstream_watch_and_each_gets_every_event_under_its_own_id()
    {
        _etcd.Put("/app/before", "x");
        var first = new WatchClient(_bed);
        var second = new WatchClient(_bed);

        var one = await first.WatchAsync("/app/", "/app0");
        var two = await second.WatchAsync("/app/", "/app0", watchId: 7);
        var revision = _etcd.Put("/app/a", "1");
        var seenByFirst = await first.NextAsync();
        var seenBySecond = await second.NextAsync();

        Assert.True(one is { Created: true, WatchId: 0, Canceled: false });
        Assert.Equal(_etcd.Revision - 1, one.Header.Revision);
        Assert.True(two is { Created: true, WatchId: 7 });
        Assert.Single(_etcd.Creates);
        Assert.True(seenByFirst is { WatchId: 0, Created: false });
        Assert.True(seenBySecond is { WatchId: 7 });
        Assert.Equal(revision, seenBySecond.Header.Revision);
        Assert.Equal(["/app/a"], seenByFirst.Events.Select(e => e.Kv.Key.ToStringUtf8()));
        Assert.Equal(seenByFirst.Events, seenBySecond.Events);
        Assert.Equal(8ul, seenBySecond.Header.MemberId);
    }

    [Fact]
    public async Task A_head_watch_joining_an_open_feed_is_created_at_etcds_current_revision_not_the_feeds_position()
    {
        var first = new WatchClient(_bed);
        await first.WatchAsync("/app/", "/app0");
        _etcd.Put("/app/a", "1");
        await first.NextAsync();

        // A write outside the range moves etcd on but not the feed, whose position stays at /app/a.
        var current = _etcd.Put("/other", "x");
        var second = new WatchClient(_bed);
        var created = await second.WatchAsync("/app/", "/app0");
        var next = _etcd.Put("/app/b", "2");
        var seen = await second.NextAsync();

        Assert.True(created.Created);
        Assert.Equal(current, created.Header.Revision);
        Assert.Equal(next, seen.Events.Single().Kv.ModRevision);
        Assert.Single(_etcd.Creates);
    }

    [Fact]
    public async Task Watches_whose_metadata_differs_only_in_what_etcd_ignores_share_one_upstream_watch_and_hasleader_does_not()
    {
        var traced = new WatchClient(_bed, headers: new Metadata { { "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }, { "x-request-id", "1" } });
        var other = new WatchClient(_bed, headers: new Metadata { { "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }, { "x-request-id", "2" } });
        var leader = new WatchClient(_bed, headers: new Metadata { { "hasleader", "true" } });

        await traced.WatchAsync("/app/", "/app0");
        await other.WatchAsync("/app/", "/app0");
        Assert.Single(_etcd.Creates);
        await leader.WatchAsync("/app/", "/app0");

        Assert.Equal(2, _etcd.Creates.Count);
    }

    [Fact]
    public async Task Ids_follow_etcds_rules_auto_ids_skip_ids_in_use_and_a_duplicate_or_an_empty_range_is_refused_with_etcds_reason()
    {
        var client = new WatchClient(_bed);

        var requested = await client.WatchAsync("/app/a", watchId: 1);
        var auto0 = await client.WatchAsync("/app/b");
        var auto2 = await client.WatchAsync("/app/c");
        var duplicate = await client.WatchAsync("/app/d", watchId: 2);
        var empty = await client.WatchAsync("/app/z", "/app/a");

        Assert.Equal([1L, 0L, 2L], new[] { requested.WatchId, auto0.WatchId, auto2.WatchId });
        Assert.True(duplicate is { WatchId: -1, Created: true, Canceled: true, CancelReason: "mvcc: duplicate watch ID provided on the WatchStream" });
        Assert.True(empty is { WatchId: -1, Created: true, Canceled: true, CancelReason: "mvcc: watcher range is empty" });
    }

    [Fact]
    public async Task Cancelling_a_watch_is_answered_as_etcd_answers_it_an_unknown_id_gets_nothing_and_the_last_watch_of_a_range_cancels_it_upstream()
    {
        var client = new WatchClient(_bed);
        await client.WatchAsync("/app/a", watchId: 3);
        await client.WatchAsync("/app/b", watchId: 4);

        client.Cancel(99);
        client.Cancel(3);
        var cancelled = await client.NextAsync();
        var upstreamCancel = await _etcd.ReceivedAsync(r => r.CancelRequest is not null);
        _etcd.Put("/app/a", "after");
        _etcd.Put("/app/b", "1");
        var next = await client.NextAsync();

        Assert.True(cancelled is { WatchId: 3, Canceled: true, Created: false, CancelReason: "" });
        Assert.Equal(_etcd.Creates.Single(c => c.Key.ToStringUtf8() == "/app/a").WatchId, upstreamCancel.Request.CancelRequest.WatchId);
        Assert.True(next is { WatchId: 4 });
    }

    [Fact]
    public async Task Filters_drop_their_events_and_a_response_left_with_none_is_not_sent()
    {
        var client = new WatchClient(_bed);
        _etcd.Put("/app/k", "0");
        await client.WatchAsync("/app/k", filters: [Noput.Noput]);
        var other = new WatchClient(_bed);
        await other.WatchAsync("/app/k", filters: [Noput.Nodelete]);
        var neither = new WatchClient(_bed);
        await neither.WatchAsync("/app/k", filters: [Noput.Noput, Noput.Nodelete]);

        _etcd.Put("/app/k", "1");
        var deleted = _etcd.Delete("/app/k");
        var onlyDelete = await client.NextAsync();
        var onlyPut = await other.NextAsync();

        Assert.Equal(deleted, onlyDelete.Header.Revision);
        Assert.Equal(Protocol.Mvccpb.Event.Types.EventType.Delete, Assert.Single(onlyDelete.Events).Type);
        Assert.Equal("1", Assert.Single(onlyPut.Events).Kv.Value.ToStringUtf8());
        Assert.Single(_etcd.Creates);
        Assert.False(neither.HasWaiting);
    }

    [Fact]
    public async Task Prev_kv_is_part_of_what_is_shared_so_only_the_watch_that_asked_gets_it()
    {
        _etcd.Put("/app/k", "old");
        var asks = new WatchClient(_bed);
        var plain = new WatchClient(_bed);
        await asks.WatchAsync("/app/k", prevKv: true);
        await plain.WatchAsync("/app/k");

        _etcd.Put("/app/k", "new");
        var withPrevious = await asks.NextAsync();
        var without = await plain.NextAsync();

        Assert.Equal("old", withPrevious.Events.Single().PrevKv.Value.ToStringUtf8());
        Assert.Null(without.Events.Single().PrevKv);
        Assert.Equal(2, _etcd.Creates.Count);
        Assert.Equal([true, false], _etcd.Creates.Select(c => c.PrevKv));
    }

    [Fact]
    public async Task A_watch_starting_in_the_future_gets_nothing_below_its_start()
    {
        var client = new WatchClient(_bed);
        var start = _etcd.Revision + 3;
        await client.WatchAsync("/app/", "/app0", start: start);

        _etcd.Put("/app/1", "a");
        _etcd.Put("/app/2", "b");
        _etcd.Put("/app/3", "c");
        _etcd.Put("/app/4", "d");
        var first = await client.NextAsync();

        Assert.Equal(start, first.Events.Single().Kv.ModRevision);
    }
}
