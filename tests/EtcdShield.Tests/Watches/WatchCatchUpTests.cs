using EtcdShield.Configuration;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Tests.Relay;

namespace EtcdShield.Tests.Watches;

/// <summary>
/// Watches that start behind a shared watch's position, and watches whose client reads too slowly: served by
/// their own upstream watch, then joined to the shared one at the hand-over revision with no gap and no duplicate.
/// </summary>
public sealed class WatchCatchUpTests : IDisposable
{
    private readonly RelayBed _bed;
    private readonly WatchEtcd _etcd;

    public WatchCatchUpTests()
    {
        _bed = new RelayBed(watches: new ShieldOptions { WatchQueueBytes = 2048 });
        _etcd = new WatchEtcd(_bed.Etcd);
    }

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task A_watch_from_the_past_is_caught_up_on_its_own_upstream_watch_then_joins_the_shared_one_without_gap_or_duplicate()
    {
        var start = _etcd.Put("/app/1", "a");
        _etcd.Put("/app/2", "b");
        var head = new WatchClient(_bed);
        await head.WatchAsync("/app/", "/app0");

        var late = new WatchClient(_bed);
        var created = await late.WatchAsync("/app/", "/app0", start: start);
        var caughtUp = await late.NextAsync();
        await _etcd.ReceivedAsync(r => r.CancelRequest is not null);
        var after = _etcd.Put("/app/3", "c");
        var live = await late.NextAsync();

        Assert.True(created.Created);
        Assert.Equal(start, _etcd.Creates[1].StartRevision);
        Assert.Equal(["/app/1", "/app/2"], caughtUp.Events.Select(e => e.Kv.Key.ToStringUtf8()));
        Assert.Equal(after, live.Events.Single().Kv.ModRevision);
        Assert.False(late.HasWaiting);
        Assert.Equal(1, _etcd.Watching);
    }

    [Fact]
    public async Task A_watch_from_the_past_within_the_shared_watchs_history_joins_from_it()
    {
        var head = new WatchClient(_bed);
        await head.WatchAsync("/app/", "/app0");
        var start = _etcd.Put("/app/1", "a");
        _etcd.Put("/app/2", "b");
        await head.NextAsync();
        await head.NextAsync();

        var late = new WatchClient(_bed);
        await late.WatchAsync("/app/", "/app0", start: start + 1);
        var replayed = await late.NextAsync();
        var after = _etcd.Put("/app/3", "c");
        var live = await late.NextAsync();

        Assert.Equal(start + 1, replayed.Events.Single().Kv.ModRevision);
        Assert.Equal(after, live.Events.Single().Kv.ModRevision);
    }

    [Fact]
    public async Task A_watch_starting_below_the_compaction_is_cancelled_as_etcd_cancels_it()
    {
        var head = new WatchClient(_bed);
        await head.WatchAsync("/app/", "/app0");
        _etcd.Put("/app/1", "a");
        var kept = _etcd.Put("/app/2", "b");
        _etcd.Compact(kept);
        await head.NextAsync();
        await head.NextAsync();

        var late = new WatchClient(_bed);
        var created = await late.WatchAsync("/app/", "/app0", watchId: 5, start: 2);
        var compacted = await late.NextAsync();

        Assert.True(created is { Created: true, WatchId: 5 });
        Assert.True(compacted is { WatchId: 5, Canceled: true, Created: false }, compacted.ToString());
        Assert.Equal(kept, compacted.CompactRevision);
        Assert.Equal(0, compacted.Header.Revision);
    }

    [Fact]
    public async Task A_slow_reader_is_moved_to_its_own_upstream_watch_while_the_fast_one_goes_on_and_gets_every_event_once_in_order()
    {
        var slowStream = new GatedClientStream();
        var slow = new WatchClient(_bed, slowStream.Stream);
        var fast = new WatchClient(_bed);
        slowStream.Open();
        await slow.WatchAsync("/app/", "/app0");
        await fast.WatchAsync("/app/", "/app0");
        slowStream.Close();

        var written = new List<long>();
        for (var i = 0; i < 40; i++)
        {
            written.Add(_etcd.Put($"/app/{i}", new string('v', 200)));
        }

        var fastSaw = new List<long>();
        while (fastSaw.Count < written.Count)
        {
            fastSaw.AddRange((await fast.NextAsync()).Events.Select(e => e.Kv.ModRevision));
        }

        var demoted = await _etcd.ReceivedAsync(r => r.CreateRequest is { StartRevision: > 0 });
        slowStream.Open();
        var slowSaw = new List<long>();
        while (slowSaw.Count < written.Count)
        {
            slowSaw.AddRange((await slow.NextAsync()).Events.Select(e => e.Kv.ModRevision));
        }

        await _etcd.ReceivedAsync(r => r.CancelRequest is not null);
        var after = _etcd.Put("/app/last", "x");
        var live = await slow.NextAsync();

        Assert.Equal(written, fastSaw);
        Assert.Equal(written, slowSaw);
        Assert.InRange(demoted.Request.CreateRequest.StartRevision, written[0], written[^1]);
        Assert.Equal(after, live.Events.Single().Kv.ModRevision);
    }

    [Fact]
    public async Task Cancelling_a_watch_with_events_still_queued_drops_them_and_nothing_of_it_follows_the_cancel_answer()
    {
        var gated = new GatedClientStream();
        var client = new WatchClient(_bed, gated.Stream);
        gated.Open();
        await client.WatchAsync("/app/", "/app0", watchId: 2);
        await client.WatchAsync("/app/other", watchId: 3);
        gated.Close();
        for (var i = 0; i < 30; i++)
        {
            _etcd.Put($"/app/{i}", new string('v', 200));
        }

        client.Cancel(2);
        await _etcd.ReceivedAsync(r => r.CancelRequest is not null);
        var after = _etcd.Put("/app/other", "x");
        gated.Open();
        var told = new List<WatchResponse>();
        do
        {
            told.Add(await client.NextAsync());
        }
        while (told[^1].WatchId != 3);

        var cancel = told.FindIndex(r => r is { WatchId: 2, Canceled: true });
        Assert.True(cancel >= 0);
        Assert.DoesNotContain(told.Skip(cancel + 1), r => r.WatchId == 2);
        Assert.True(told.Count(r => r.WatchId == 2 && r.Events.Count > 0) < 30);
        Assert.Equal(after, told[^1].Events.Single().Kv.ModRevision);
    }
}
