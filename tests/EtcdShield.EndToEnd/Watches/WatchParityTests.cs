using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// The proxy's watches are etcd's: every test opens the same watches at the same time on streams straight to etcd
/// and through the encrypting proxy, and compares what arrives event by event (values as plaintext) and answer by
/// answer, in each watch mode the proxy has (<see cref="WatchSharing"/>).
/// </summary>
[Collection(WatchEtcd.Name)]
public sealed class WatchParityTests(WatchFixture fixture)
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static readonly ByteString FromKey = ByteString.CopyFrom(0);

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task Many_watches_with_mixed_options_on_several_streams_see_what_etcd_sends(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("mixed");
        var load = new Workload(proxy.Channel, p);
        var past = await load.PutAsync("k1", "seed-1");
        await load.PutAsync("dir/a", "seed-2");
        var head = await load.PutAsync("z1", "seed-3");
        WatchCreateRequest Watch(string key, string? end = null, long start = 0, bool prevKv = false, params WatchCreateRequest.Types.FilterType[] filters)
        {
            var create = new WatchCreateRequest { Key = B(p + key), RangeEnd = end is null ? ByteString.Empty : end == "\0" ? FromKey : B(p + end), StartRevision = start, PrevKv = prevKv };
            create.Filters.AddRange(filters);
            return create;
        }

        var noPut = WatchCreateRequest.Types.FilterType.Noput;
        var noDelete = WatchCreateRequest.Types.FilterType.Nodelete;
        WatchCreateRequest[][] plan =
        [
            [Watch("k1"), Watch("dir/", "dir0", prevKv: true), Watch("a", "m", filters: noPut), Watch("z", "\0"), Watch("", "0", start: past, prevKv: true)],
            [Watch("dir/", "dir0", prevKv: true), Watch("dir/", "dir0", prevKv: true), Watch("k1", start: past), Watch("", "0", prevKv: true, filters: noDelete), Watch("k", "l", start: head + 1)],
            [Watch("", "0", start: head + 20), Watch("dir/", "dir0", start: past, prevKv: true, filters: noPut), Watch("l1", prevKv: true), Watch("", "0", filters: [noPut, noDelete]), Watch("k2", start: head)],
        ];
        var streams = plan.Select(_ => new TwinWatch(fixture.Direct, proxy, proxy.NewChannel())).ToList();
        var watches = new List<(TwinWatch Stream, long Id, WatchCreateRequest Create)>();
        try
        {
            for (var s = 0; s < plan.Length; s++)
            {
                for (var w = 0; w < plan[s].Length; w++)
                {
                    // The second stream names its ids; the others let etcd number them.
                    var create = plan[s][w].Clone();
                    create.WatchId = s == 1 ? 10 + w : 0;
                    var (direct, proxied) = await streams[s].CreateAsync(create);
                    Assert.Equal(WatchTranscript.Describe(direct, header: true), WatchTranscript.Describe(proxied, header: true));
                    watches.Add((streams[s], direct.WatchId, create));
                }
            }

            await load.RunAsync(writers: 3, operations: 40, seed: 13);
            var (deleted, put) = await load.CloseAsync(watches.Select(w => w.Create.Key));
            foreach (var stream in streams)
            {
                await stream.WaitForAsync(watches.Where(w => w.Stream == stream && !w.Create.Filters.Contains(noDelete)).Select(w => (w.Id, deleted)));
                await stream.WaitForAsync(watches.Where(w => w.Stream == stream && !w.Create.Filters.Contains(noPut)).Select(w => (w.Id, put)));
            }

            var sent = new Dictionary<TwinWatch, WatchTranscript>();
            foreach (var stream in streams)
            {
                sent[stream] = await stream.AssertSameAsync();
            }

            // Not vacuous: every watch but the one filtering everything saw events, and identical watches on one
            // stream and on two saw the same ones.
            Assert.All(watches.Where(w => w.Create.Filters.Count < 2), w => Assert.NotEmpty(sent[w.Stream].Events(w.Id)));
            Assert.Equal(sent[streams[1]].Events(10), sent[streams[1]].Events(11));
            Assert.Equal(sent[streams[0]].Events(watches[1].Id), sent[streams[1]].Events(10));
        }
        finally
        {
            foreach (var stream in streams)
            {
                await stream.DisposeAsync();
            }
        }
    }

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task Watch_ids_cancels_and_refused_creates_are_answered_as_etcd_answers_them(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("ids");
        var load = new Workload(proxy.Channel, p);
        await using var twin = new TwinWatch(fixture.Direct, proxy, proxy.NewChannel());

        // Auto ids count up from 0 and skip ids the client took; a taken id is refused, so is an empty range.
        var (first, _) = await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k") });
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k"), WatchId = 5, PrevKv = true });
        var (duplicate, _) = await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k2"), WatchId = 5 });
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k2"), WatchId = 2 });
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k") });
        var (skipping, _) = await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "dir/"), RangeEnd = B(p + "dir0") });
        var (empty, _) = await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "b"), RangeEnd = B(p + "a") });
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "b"), RangeEnd = B(p + "b") });

        // A cancel of an id that is not open gets no answer at all: the next answer is the next create's.
        await twin.SendAsync(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = 99 } });
        var one = await load.PutAsync("k", "one");
        var dir = await load.PutAsync("dir/x", "in dir");
        await twin.WaitForAsync([(0, one), (5, one), (1, one), (3, dir)]);
        await twin.CancelAsync(0);
        await twin.CancelAsync(5);
        var (reused, _) = await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k"), WatchId = 5 });
        var (next, _) = await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k") });
        var two = await load.PutAsync("k", "two");
        var k2 = await load.PutAsync("k2", "k2");
        await twin.WaitForAsync([(5, two), (1, two), (4, two), (2, k2)]);

        await twin.AssertSameAsync();
        Assert.Equal([0, -1, 3, -1, 5, 4], new[] { first, duplicate, skipping, empty, reused, next }.Select(r => r.WatchId));
        Assert.Equal("mvcc: duplicate watch ID provided on the WatchStream", duplicate.CancelReason);
        Assert.Equal("mvcc: watcher range is empty", empty.CancelReason);
        foreach (var session in new[] { twin.Direct, twin.Proxied })
        {
            var received = session.Received;
            var cancelled = received.ToList().FindIndex(r => r.WatchId == 0 && r.Canceled);
            Assert.DoesNotContain(received.Skip(cancelled), r => r.WatchId == 0 && r.Events.Count > 0);
            Assert.DoesNotContain(received, r => r.WatchId == 99);
        }
    }

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task A_watch_cancelled_while_writes_go_on_stops_at_its_cancel_answer(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("midrun");
        var load = new Workload(proxy.Channel, p);
        await using var twin = new TwinWatch(fixture.Direct, proxy, proxy.NewChannel());
        var range = new WatchCreateRequest { Key = B(p), RangeEnd = B(p[..^1] + "0"), PrevKv = true };
        await twin.CreateAsync(range);
        await twin.CreateAsync(range);

        var writes = load.RunAsync(writers: 2, operations: 40, seed: 7);
        await twin.Proxied.NextAsync(r => r.WatchId == 0 && r.Events.Count > 0);
        await twin.SendAsync(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = 0 } });
        await writes;
        await twin.Direct.NextAsync(r => r.WatchId == 0 && r.Canceled);
        await twin.Proxied.NextAsync(r => r.WatchId == 0 && r.Canceled);
        var (_, put) = await load.CloseAsync([B(p + "k1")]);
        await twin.WaitForAsync([(1, put)]);

        // Watch 0 got some prefix of what its twin 1 got, and nothing after its cancel answer.
        var (direct, proxied) = await twin.TranscriptsAsync();
        WatchTranscript.AssertSameLines(direct.Events(1), proxied.Events(1), "events of watch 1");
        foreach (var transcript in new[] { direct, proxied })
        {
            transcript.AssertConsistent();
            var cancelled = transcript.Responses.ToList().FindIndex(r => r.WatchId == 0 && r.Canceled);
            Assert.True(cancelled > 0, "watch 0 was never cancelled");
            Assert.DoesNotContain(transcript.Responses.Skip(cancelled), r => r.WatchId == 0 && r.Events.Count > 0);
            Assert.Equal(transcript.Events(1).Take(transcript.Events(0).Count), transcript.Events(0));
            Assert.True(transcript.Events(0).Count < transcript.Events(1).Count, "the cancel came after every write");
        }
    }

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task A_watch_from_below_the_compaction_is_cancelled_as_etcd_cancels_it(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("compact");
        var load = new Workload(proxy.Channel, p);
        var before = await load.PutAsync("k", "1");
        await load.PutAsync("k", "2");
        var compacted = await load.PutAsync("k", "3");
        await new KV.KVClient(fixture.Direct).CompactAsync(new CompactionRequest { Revision = compacted, Physical = true });
        await using var twin = new TwinWatch(fixture.Direct, proxy, proxy.NewChannel());

        // A watch at the compaction revision itself is still served; one below it is cancelled.
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k"), StartRevision = compacted, WatchId = 1 });
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k"), StartRevision = before, WatchId = 2, PrevKv = true });
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p), RangeEnd = B(p[..^1] + "0"), StartRevision = compacted - 1, WatchId = 3 });
        await twin.Direct.NextAsync(r => r.WatchId == 3 && r.Canceled);
        await twin.Proxied.NextAsync(r => r.WatchId == 3 && r.Canceled);
        var after = await load.PutAsync("k", "4");
        await twin.WaitForAsync([(1, after), (2, after)]);

        await twin.AssertSameAsync();
        var (direct, _) = await twin.TranscriptsAsync();
        Assert.Equal(2, direct.Control(headers: false).Count(line => line.Contains($"compact={compacted}", StringComparison.Ordinal)));
    }

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task A_response_above_the_fragment_limit_comes_whole_in_fragments_to_a_watch_that_asked_for_them(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("fragment");
        var kv = new KV.KVClient(proxy.Channel);

        // Each transaction fits under --max-request-bytes; a watch catching up from before the first gets all their
        // events in one response, with the previous values twice the fragment limit.
        TxnRequest Overwrite(int round)
        {
            var txn = new TxnRequest();
            txn.Success.AddRange(Enumerable.Range(0, 5).Select(i => new RequestOp { RequestPut = new PutRequest { Key = B(p + i), Value = B(new string((char)('a' + round), 12_000) + i) } }));
            return txn;
        }

        var start = 0L;
        for (var round = 0; round < 12; round++)
        {
            var revision = (await kv.TxnAsync(Overwrite(round))).Header.Revision;
            start = start == 0 ? revision : start;
        }

        await using var twin = new TwinWatch(fixture.Direct, proxy, proxy.NewChannel());
        var range = new WatchCreateRequest { Key = B(p), RangeEnd = B(p[..^1] + "0"), PrevKv = true, StartRevision = start, WatchId = 1 };
        var fragmented = range.Clone();
        fragmented.Fragment = true;
        fragmented.WatchId = 2;
        await twin.CreateAsync(range);
        await twin.CreateAsync(fragmented);
        var last = (await kv.TxnAsync(new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = B(p + "last"), Value = B("last") } } } })).Header.Revision;
        await twin.WaitForAsync([(1, last), (2, last)]);

        // Once caught up, one revision's response: above --max-request-bytes, below the fragment limit.
        var between = (await kv.TxnAsync(Overwrite(12))).Header.Revision;
        await twin.WaitForAsync([(1, between), (2, between)]);

        await twin.AssertSameAsync();
        var (direct, proxied) = await twin.TranscriptsAsync();
        Assert.True(direct.Responses.Any(r => r.WatchId == 2 && r.Fragment), "etcd did not fragment: the test no longer tests fragments");
        foreach (var transcript in new[] { direct, proxied })
        {
            var at = transcript.Responses.Where(r => r.WatchId == 2 && r.Header.Revision == between).ToList();
            Assert.True(
                at is [{ Events.Count: 5, Fragment: false } whole] && whole.CalculateSize() > WatchFixture.MaxRequestBytes,
                $"revision {between} came in {at.Count} responses: {string.Join(", ", at.Select(r => $"{r.Events.Count} events of {r.CalculateSize()} bytes, fragment {r.Fragment}"))}");
        }

        Assert.DoesNotContain(proxied.Responses, r => r.WatchId == 1 && r.Fragment);
        Assert.All(proxied.Responses.Where(r => r.WatchId == 2 && r.Events.Count > 1), r => Assert.True(r.CalculateSize() < WatchFixture.FragmentBytes, $"a fragment of {r.CalculateSize()} bytes"));
    }
}
