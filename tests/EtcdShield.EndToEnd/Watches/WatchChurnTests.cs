using System.Globalization;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Watches;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// Watch churn on shared watches, against an etcd of the test's own: client watches of a few ranges created and
/// cancelled at once, and client streams dropped in the middle of their creates, while a writer goes on. Afterwards
/// the proxy holds nothing for them (no feed, no subscriber, no buffered byte, and etcd counts no watch or watch
/// stream of the proxy's left), and a fresh watch of the same ranges still gets exactly what etcd sends.
/// </summary>
[Collection(WatchEtcd.Name)]
public sealed class WatchChurnTests(WatchFixture fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [SharedWatchFact]
    public async Task Watches_created_and_cancelled_at_once_and_streams_dropped_mid_create_leave_no_feed_and_no_upstream_watch()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var proxy = new WatchFixture.Proxy(
            await ShieldServer.StartAsync(fixture.Pki, etcd.ClientUrl, flags: ["--encryption-key-file", fixture.KeyFile, .. WatchSharing.Flags(WatchSharing.Shared)]),
            fixture.Pki);
        using var feeds = proxy.Shield.Collect<long>(WatchMetrics.MeterName, "etcdshield.watch.feeds");
        using var subscribers = proxy.Shield.Collect<long>(WatchMetrics.MeterName, "etcdshield.watch.subscribers");
        using var buffered = proxy.Shield.Collect<long>(WatchMetrics.MeterName, "etcdshield.watch.buffered");
        using var http = new HttpClient { BaseAddress = new Uri(etcd.ClientUrl) };
        const string p = "/churn/";
        var kv = new KV.KVClient(proxy.Channel);
        var past = (await kv.PutAsync(new PutRequest { Key = B(p + "k1"), Value = B("seed") }, deadline: DateTime.UtcNow + Deadline)).Header.Revision;

        // What etcd counts before any client watch (the proxy may keep watches of its own).
        var idle = await EtcdWatchesAsync(http);

        WatchCreateRequest[] ranges =
        [
            new() { Key = B(p), RangeEnd = B("/churn0") },
            new() { Key = B(p), RangeEnd = B("/churn0"), PrevKv = true },
            new() { Key = B(p + "k1") },
            new() { Key = B(p + "k1"), StartRevision = past },
        ];
        using var stop = new CancellationTokenSource();
        var writing = WriteAsync(kv, p, stop.Token);
        var channels = Enumerable.Range(0, 2).Select(_ => proxy.NewChannel()).ToList();
        const int rounds = 60;
        try
        {
            // Four streams create and at once cancel a watch per round, never waiting for the created answer; four
            // more open streams that send creates and are dropped at once.
            var churning = Enumerable.Range(0, 4).Select(s => Task.Run(() => CreateAndCancelAsync(channels[s % 2], ranges, rounds, s)));
            var dropping = Enumerable.Range(0, 4).Select(s => Task.Run(() => DropMidCreateAsync(channels[s % 2], ranges, rounds / 4)));
            var answered = await Task.WhenAll(churning.Concat(dropping)).WaitAsync(TimeSpan.FromSeconds(60));

            // Not vacuous: every pair was answered created then canceled, as etcd answers it.
            Assert.All(answered.Take(4), count => Assert.Equal(2 * rounds, count));
        }
        finally
        {
            await stop.CancelAsync();
            await writing;
        }

        await Eventually.HoldsAsync(
            async () =>
            {
                buffered.RecordObservableInstruments();
                var (watchers, streams) = await EtcdWatchesAsync(http);
                return (Feeds: Sum(feeds), Subscribers: Sum(subscribers), Buffered: buffered.LastMeasurement?.Value ?? -1, Watchers: watchers - idle.Watchers, Streams: streams - idle.Streams);
            },
            held => held == (0, 0, 0, 0, 0),
            Deadline);
        var opened = feeds.GetMeasurementSnapshot().Count(m => m.Value > 0);
        output.WriteLine($"{opened} shared upstream watches opened for {4 * rounds} create/cancel pairs and {4 * (rounds / 4) * ranges.Length} dropped creates");

        // A fresh watch of every range still gets exactly what etcd sends.
        using var toEtcd = GrpcChannels.ToEtcd(etcd);
        await using (var twin = new TwinWatch(toEtcd, proxy, proxy.NewChannel()))
        {
            foreach (var range in ranges)
            {
                var (direct, proxied) = await twin.CreateAsync(range);
                Assert.Equal(WatchTranscript.Describe(direct, header: true), WatchTranscript.Describe(proxied, header: true));
            }

            var load = new Workload(proxy.Channel, p);
            await load.RunAsync(writers: 2, operations: 20, seed: 31);
            var (_, put) = await load.CloseAsync([B(p + "k1")]);
            await twin.WaitForAsync(Enumerable.Range(0, ranges.Length).Select(i => ((long)i, put)));
            var sent = await twin.AssertSameAsync();
            Assert.All(Enumerable.Range(0, ranges.Length), i => Assert.NotEmpty(sent.Events(i)));
        }

        // Churn of one range with no other watch of it opens and closes a shared upstream watch per pair (no
        // coalescing): bounded by the creates, but etcd sees the churn.
        Assert.InRange(opened, 1, (4 * rounds) + (4 * (rounds / 4) * ranges.Length));
        foreach (var channel in channels)
        {
            channel.Dispose();
        }
    }

    /// <summary>One stream: per round a create and its cancel sent back to back; returns the created and canceled answers it got.</summary>
    private static async Task<int> CreateAndCancelAsync(GrpcChannel channel, WatchCreateRequest[] ranges, int rounds, int seed)
    {
        using var call = new Watch.WatchClient(channel).Watch(deadline: DateTime.UtcNow.AddSeconds(60));
        for (var i = 1; i <= rounds; i++)
        {
            var create = ranges[(i + seed) % ranges.Length].Clone();
            create.WatchId = i;
            await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = create });
            await call.RequestStream.WriteAsync(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = i } });
        }

        var answers = 0;
        while (answers < 2 * rounds && await call.ResponseStream.MoveNext())
        {
            var response = call.ResponseStream.Current;
            answers += (response.Created ? 1 : 0) + (response.Canceled ? 1 : 0);
        }

        await call.RequestStream.CompleteAsync();
        return answers;
    }

    /// <summary>Streams that send a create of every range and are dropped (cancelled by the client) right after.</summary>
    private static async Task<int> DropMidCreateAsync(GrpcChannel channel, WatchCreateRequest[] ranges, int streams)
    {
        for (var s = 0; s < streams; s++)
        {
            using var gone = new CancellationTokenSource();
            using var call = new Watch.WatchClient(channel).Watch(cancellationToken: gone.Token);
            try
            {
                foreach (var range in ranges)
                {
                    await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = range });
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
            {
                // The client's own cancellation raced the writes.
            }

            await gone.CancelAsync();
        }

        return 0;
    }

    private static async Task WriteAsync(KV.KVClient kv, string prefix, CancellationToken stop)
    {
        for (var i = 0; !stop.IsCancellationRequested; i++)
        {
            var key = B(prefix + (i % 3 == 0 ? "k1" : "k" + (i % 7).ToString(CultureInfo.InvariantCulture)));
            await kv.PutAsync(new PutRequest { Key = key, Value = B("v" + i.ToString(CultureInfo.InvariantCulture)) }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: CancellationToken.None);
        }
    }

    private static long Sum(Microsoft.Extensions.Diagnostics.Metrics.Testing.MetricCollector<long> counter) =>
        counter.GetMeasurementSnapshot().Sum(m => m.Value);

    /// <summary>etcd's own count of its watchers and watch streams (<c>/metrics</c>).</summary>
    private static async Task<(long Watchers, long Streams)> EtcdWatchesAsync(HttpClient http)
    {
        var text = await http.GetStringAsync("/metrics");
        long Gauge(string name) => (long)double.Parse(
            text.Split('\n').Single(line => line.StartsWith(name + " ", StringComparison.Ordinal))[(name.Length + 1)..],
            CultureInfo.InvariantCulture);
        return (Gauge("etcd_debugging_mvcc_watcher_total"), Gauge("etcd_debugging_mvcc_watch_stream_total"));
    }
}
