using EtcdShield.Configuration;
using EtcdShield.Tests.Relay;

namespace EtcdShield.Tests.Watches;

/// <summary>
/// The race a rejoin guards against, driven step by step: the writer's rejoin (the client drained its queue) makes
/// its replay from the watch's next revision, and before the session is given it the watch's own upstream watch
/// queues the same events. The replay must then be refused, or the client gets those events twice.
/// </summary>
public sealed class WatchRejoinRaceTests
{
    [Fact]
    public async Task A_replay_made_before_the_watchs_own_upstream_watch_queued_the_same_events_is_refused_and_the_client_gets_each_event_once()
    {
        var opener = new HeldOpener();
        using var bed = new RelayBed(watches: new ShieldOptions(), watchRewriter: opener);
        var etcd = new WatchEtcd(bed.Etcd);
        var head = new WatchClient(bed);
        await head.WatchAsync("/app/", "/app0");
        var start = etcd.Put("/app/1", "a");
        var last = etcd.Put("/app/2", "b");
        await head.NextAsync();
        await head.NextAsync();

        // The feed is at `last` with both responses in its history. A watch from `start` is served by its own upstream
        // watch, whose catch-up batch (the next response with events to be opened) is held until the writer's rejoin
        // has made its replay.
        opener.Armed = true;
        var raced = 0;
        var queuedInBetween = false;
        bed.Hub!.ReplayMade = (watch, from) =>
        {
            if (Interlocked.Exchange(ref raced, 1) != 0)
            {
                return;
            }

            opener.Release();

            // The reader queues the batch under the session's lock only; it then waits for this feed's lock to rejoin.
            queuedInBetween = SpinWait.SpinUntil(() => watch.Session.NextOf(watch) > from, TimeSpan.FromSeconds(20));
        };

        var late = new WatchClient(bed);
        var created = await late.WatchAsync("/app/", "/app0", start: start);
        await etcd.ReceivedAsync(r => r.CancelRequest is not null);
        var after = etcd.Put("/app/3", "c");
        var seen = new List<long>();
        while (!seen.Contains(after))
        {
            seen.AddRange((await late.NextAsync()).Events.Select(e => e.Kv.ModRevision));
        }

        Assert.True(created.Created);
        Assert.Equal(start, etcd.Creates[^1].StartRevision);
        Assert.Equal([start, last], (await opener.Held.Task.WaitAsync(TimeSpan.FromSeconds(20))).Events.Select(e => e.Kv.ModRevision));
        Assert.True(queuedInBetween, "the watch's own upstream watch did not queue its batch while the rejoin was held");
        Assert.Equal([start, last, after], seen);
        Assert.False(late.HasWaiting);
        Assert.Equal(1, etcd.Watching);
    }
}
