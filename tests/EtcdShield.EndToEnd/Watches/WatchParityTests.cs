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
}
