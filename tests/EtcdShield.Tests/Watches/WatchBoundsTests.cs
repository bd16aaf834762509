using EtcdShield.Configuration;
using EtcdShield.Tests.Relay;

namespace EtcdShield.Tests.Watches;

/// <summary>What a client with narrow grants can make the shared watches hold: bounded by the flags, whatever it does.</summary>
public sealed class WatchBoundsTests
{
    [Fact]
    public async Task The_histories_of_many_feeds_stay_within_the_global_buffer_budget()
    {
        const int budget = 64 * 1024;
        using var bed = new RelayBed(watches: new ShieldOptions { WatchBufferBytes = budget });
        var etcd = new WatchEtcd(bed.Etcd);
        var client = new WatchClient(bed);
        for (var i = 0; i < 16; i++)
        {
            await client.WatchAsync($"/app/{i}");
        }

        // Each distinct key is a feed of its own; each feed keeps its response in its history.
        for (var i = 0; i < 16; i++)
        {
            etcd.Put($"/app/{i}", new string('v', 8 * 1024));
            await client.NextAsync();
        }

        // Once one more answer has come, everything before it was written: what is left is histories (and that answer).
        await client.WatchAsync("/app/last");
        Assert.InRange(bed.Hub!.Budget.Used, 0, budget);
    }

    [Fact]
    public async Task Progress_notify_ticks_for_a_client_that_never_reads_stay_within_its_queue()
    {
        const int queue = 4096;
        using var bed = new RelayBed(watches: new ShieldOptions { WatchQueueBytes = queue, WatchProgressNotifyInterval = TimeSpan.FromMinutes(1) });
        _ = new WatchEtcd(bed.Etcd);
        var gated = new GatedClientStream();
        var client = new WatchClient(bed, gated.Stream);
        gated.Open();
        for (var i = 0; i < 50; i++)
        {
            await client.WatchAsync($"/app/{i}", progressNotify: true);
        }

        gated.Close();
        for (var tick = 0; tick < 100; tick++)
        {
            bed.Time.Advance(TimeSpan.FromMinutes(1));
        }

        // 50 watches x 100 ticks x ~25 bytes would be ~125 KB: a tick finding the queue full waits for the next, as etcd's does.
        Assert.InRange(bed.Hub!.Budget.Used, 0, 2 * queue);
    }

    [Fact]
    public async Task A_drained_queue_looks_only_at_the_private_watches_for_a_rejoin_not_at_every_watch_of_the_stream()
    {
        using var bed = new RelayBed(watches: new ShieldOptions());
        var etcd = new WatchEtcd(bed.Etcd);
        await new WatchClient(bed).WatchAsync("/app/quiet");
        var client = new WatchClient(bed);

        // From the feed's position, so on its own upstream watch; with no event or progress there to show it was not
        // compacted, it stays there. Every write after it drains the queue with one private watch on the stream.
        Assert.False((await client.WatchAsync("/app/quiet", start: 1)).Canceled);
        Assert.Equal(1, etcd.Creates[^1].StartRevision);
        const int idle = 1000;
        for (var i = 0; i < idle; i++)
        {
            await client.WatchAsync("/app/idle");
        }

        // One look per drained write at the one private watch: a scan of the stream's watches would be ~idle²/2.
        Assert.InRange(bed.Hub!.RejoinChecks, 1, idle + 2);
    }

    [Fact]
    public async Task Create_and_cancel_churn_of_one_range_on_one_stream_leaves_no_upstream_watch_and_no_queued_bytes()
    {
        using var bed = new RelayBed(watches: new ShieldOptions());
        const int rounds = 500;

        // The shared stream closes with its last watch, so each round may open one: a stream served for each.
        var etcd = new WatchEtcd(bed.Etcd, streams: rounds + 2);
        var client = new WatchClient(bed);
        for (var i = 1; i <= rounds; i++)
        {
            client.Create("/app/churn", watchId: i);
            client.Cancel(i);
        }

        var created = 0;
        var cancelled = 0;
        while (created + cancelled < 2 * rounds)
        {
            var answer = await client.NextAsync();
            created += answer.Created ? 1 : 0;
            cancelled += answer.Canceled ? 1 : 0;
        }

        // The feed closes with its last member: every upstream create is cancelled, the last one too.
        await etcd.ReceivedAsync(_ => etcd.Watching == 0);

        Assert.Equal(rounds, created);
        Assert.Equal(rounds, cancelled);
        Assert.InRange(etcd.Creates.Count, 1, rounds);
        Assert.Equal(0, etcd.Watching);
        // At most the last answer's bytes, released once its write returns.
        Assert.InRange(bed.Hub!.Budget.Used, 0, 256);
    }
}
