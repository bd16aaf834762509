using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// Shared watches when the etcd behind the proxy crashes: etcd of the test's own is killed (SIGKILL) under many
/// client watches and concurrent writers, and restarted on its data directory, or the member of a three-member
/// cluster the proxy uses is killed and the proxy goes on with another. Every client stream ends with a
/// status clientv3 retries on, the client resumes each watch from the revision after its last event, and over the
/// whole run each watch gets what the same watch opened on etcd afterwards gets: no gap, no duplicate.
/// </summary>
[Collection(WatchEtcd.Name)]
public sealed class WatchFaultTests(WatchFixture fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [SharedWatchFact]
    public async Task Watches_resumed_after_etcd_is_killed_and_restarted_see_exactly_what_etcd_sends_from_their_start()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await ResumeThroughAsync(etcd.ClientUrl, etcd, kill: etcd.StopAsync, recover: () => etcd.StartAgainAsync());
    }

    [SharedWatchFact]
    public async Task Watches_resumed_after_the_cluster_member_behind_the_proxy_is_killed_see_exactly_what_etcd_sends_from_their_start()
    {
        await using var cluster = await EtcdCluster.StartAsync(3);

        // The proxy takes the first reachable endpoint, the first member; the others go on without it.
        var victim = cluster.Members[0];
        await ResumeThroughAsync(cluster.Endpoints, cluster.Members[1], kill: victim.StopAsync, recover: () => cluster.WaitForLeaderAsync());
    }

    /// <summary>
    /// Watches and writers through a proxy of <paramref name="endpoints"/>; <paramref name="kill"/> under them, every
    /// client stream broken, <paramref name="recover"/>, more writes; then each watch compared with the same watch
    /// opened on <paramref name="survivor"/> from its start.
    /// </summary>
    private async Task ResumeThroughAsync(string endpoints, EtcdProcess survivor, Func<Task> kill, Func<Task> recover)
    {
        await using var proxy = new WatchFixture.Proxy(
            await ShieldServer.StartAsync(fixture.Pki, endpoints, flags: ["--encryption-key-file", fixture.KeyFile, .. WatchSharing.Flags(WatchSharing.Shared)], output: output),
            fixture.Pki);
        const string p = "/fault/";
        var kv = new KV.KVClient(proxy.Channel);
        var past = (await kv.PutAsync(new PutRequest { Key = B(p + "k1"), Value = B("seed") }, deadline: DateTime.UtcNow + Deadline)).Header.Revision;
        await kv.PutAsync(new PutRequest { Key = B(p + "dir/a"), Value = B("seed") }, deadline: DateTime.UtcNow + Deadline);

        static WatchCreateRequest Watch(string key, string? end = null, long start = 0, bool prevKv = false) =>
            new() { Key = B(key), RangeEnd = end is null ? ByteString.Empty : B(end), StartRevision = start, PrevKv = prevKv };

        // Identical watches on different streams, prefixes and single keys, prev_kv on and off, from the head and from the past.
        WatchCreateRequest[] plan =
        [
            Watch(p, "/fault0", prevKv: true),
            Watch(p, "/fault0"),
            Watch(p + "k1"),
            Watch(p + "k1", prevKv: true, start: past),
            Watch(p + "dir/", p + "dir0"),
            Watch(p + "dir/", p + "dir0", prevKv: true, start: past),
        ];
        var channels = Enumerable.Range(0, 3).Select(_ => proxy.NewChannel()).ToList();
        var streams = new List<ResumingWatchStream>();
        for (var s = 0; s < 8; s++)
        {
            // Each stream takes the plan rotated, so identical watches sit on many streams and channels.
            streams.Add(new ResumingWatchStream(s % 4 == 3 ? proxy.Channel : channels[s % 3], plan.Skip(s % plan.Length).Concat(plan.Take(s % plan.Length))));
        }

        using var writes = new Writers(proxy.Channel, p);
        try
        {
            await Eventually.HoldsAsync(() => Task.FromResult(streams.All(s => s.AllCreated)), all => all, Deadline);
            var writing = writes.RunAsync(writers: 3, seed: 5);
            await Eventually.HoldsAsync(() => Task.FromResult(writes.Succeeded), n => n >= 60, Deadline);

            await kill();
            var killedAt = writes.LastRevision;
            await Eventually.HoldsAsync(() => Task.FromResult(streams.Count(s => s.Ends.Count > 0)), n => n == streams.Count, Deadline);
            await recover();
            var before = writes.Succeeded;
            await Eventually.HoldsAsync(() => Task.FromResult(writes.Succeeded), n => n >= before + 60, Deadline);
            await writes.StopAsync(writing);

            var close = await kv.TxnAsync(
                new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = B(p + "k1"), Value = B("end") } }, new RequestOp { RequestPut = new PutRequest { Key = B(p + "dir/a"), Value = B("end") } } } },
                deadline: DateTime.UtcNow + Deadline);
            var last = close.Header.Revision;
            await Eventually.HoldsAsync(
                () => Task.FromResult(streams.SelectMany((s, n) => Enumerable.Range(0, s.Count).Where(i => !s.Reached(i, last)).Select(i => $"stream {n} watch {i} (ends: {string.Join("; ", s.Ends)})")).ToList()),
                behind => behind.Count == 0,
                Deadline);

            using var direct = GrpcChannels.ToEtcd(survivor);
            foreach (var stream in streams)
            {
                // clientv3 resumes only on Unavailable; anything else would have stopped the stream.
                Assert.All(stream.Ends, end => Assert.Equal(nameof(StatusCode.Unavailable), end));
                for (var i = 0; i < stream.Count; i++)
                {
                    var create = stream.Started(i);
                    var expected = await DirectEventsAsync(direct, create, last, proxy);
                    var got = (await WatchTranscript.ReadAsync(stream.Received(i), null)).Events(0);
                    WatchTranscript.AssertSameLines(expected, got, $"events of {create.Key.ToStringUtf8()}..{create.RangeEnd.ToStringUtf8()} prev_kv={create.PrevKv} from {create.StartRevision}");

                    // Not vacuous: the watch saw events on both sides of the kill.
                    Assert.Contains(stream.Received(i), r => r.Events[0].Kv.ModRevision <= killedAt);
                    Assert.Contains(stream.Received(i), r => r.Events[^1].Kv.ModRevision > killedAt);
                }
            }
        }
        finally
        {
            await writes.StopAsync(Task.CompletedTask);
            foreach (var stream in streams)
            {
                await stream.DisposeAsync();
            }

            foreach (var channel in channels)
            {
                channel.Dispose();
            }
        }
    }

    /// <summary>The events the same watch opened straight on etcd gets from its start up to <paramref name="last"/>, values opened.</summary>
    private static async Task<IReadOnlyList<string>> DirectEventsAsync(GrpcChannel direct, WatchCreateRequest create, long last, WatchFixture.Proxy proxy)
    {
        await using var session = new WatchSession(direct);
        var request = create.Clone();
        request.WatchId = 0;
        await session.CreateAsync(request);
        await session.NextAsync(r => r.Events.Any(e => e.Kv.ModRevision >= last), Deadline);
        return (await WatchTranscript.ReadAsync(session.Received, proxy.OpenAsync)).Events(0);
    }

    /// <summary>Writers through the proxy that go on through an outage (each call with a deadline, failures counted), until stopped.</summary>
    private sealed class Writers(GrpcChannel proxy, string prefix) : IDisposable
    {
        private static readonly string[] Keys = ["k1", "k2", "dir/a", "dir/b", "z1"];
        private readonly KV.KVClient kv = new(proxy);
        private readonly CancellationTokenSource stop = new();
        private int succeeded;
        private long lastRevision;
        private int sequence;

        public int Succeeded => Volatile.Read(ref succeeded);

        /// <summary>The highest revision a write was acknowledged at.</summary>
        public long LastRevision => Interlocked.Read(ref lastRevision);

        public Task RunAsync(int writers, int seed) =>
            Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(() => WriteAsync(new Random(seed + w)))));

        public async Task StopAsync(Task writing)
        {
            await stop.CancelAsync();
            await writing;
        }

        public void Dispose() => stop.Dispose();

        private async Task WriteAsync(Random random)
        {
            while (!stop.IsCancellationRequested)
            {
                var key = B(prefix + Keys[random.Next(Keys.Length)]);
                var deadline = DateTime.UtcNow.AddSeconds(3);
                try
                {
                    var revision = random.Next(6) switch
                    {
                        < 3 => (await kv.PutAsync(new PutRequest { Key = key, Value = B("v" + Interlocked.Increment(ref sequence)) }, deadline: deadline)).Header.Revision,
                        3 => (await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = key }, deadline: deadline)).Header.Revision,
                        4 => (await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = B(prefix + "dir/"), RangeEnd = B(prefix + "dir0") }, deadline: deadline)).Header.Revision,
                        _ => (await kv.TxnAsync(
                            new TxnRequest
                            {
                                Success =
                                {
                                    new RequestOp { RequestPut = new PutRequest { Key = key, Value = B("t" + Interlocked.Increment(ref sequence)) } },
                                    new RequestOp { RequestPut = new PutRequest { Key = B(prefix + "dir/b"), Value = B("t" + Interlocked.Increment(ref sequence)) } },
                                },
                            },
                            deadline: deadline)).Header.Revision,
                    };
                    Interlocked.Increment(ref succeeded);
                    InterlockedMax(ref lastRevision, revision);
                }
                catch (RpcException) when (!stop.IsCancellationRequested)
                {
                    // etcd is down or restarting: the write may or may not have been applied; the watches say which.
                    try
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(50), stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
                catch (RpcException)
                {
                    return;
                }
            }
        }

        private static void InterlockedMax(ref long target, long value)
        {
            var seen = Interlocked.Read(ref target);
            while (value > seen)
            {
                var was = Interlocked.CompareExchange(ref target, value, seen);
                if (was == seen)
                {
                    return;
                }

                seen = was;
            }
        }
    }
}
