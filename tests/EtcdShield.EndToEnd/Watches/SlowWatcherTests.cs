using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// A client that stops reading its watch stream (HTTP/2 flow control then stops the proxy writing to it) must not
/// hold back another client watching the same range, and once it reads again it must get every event, in order,
/// with no gap and no duplicate.
/// </summary>
[Collection(WatchEtcd.Name)]
public sealed class SlowWatcherTests(WatchFixture fixture)
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task A_watcher_that_stops_reading_neither_delays_another_nor_loses_events(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("slow");
        var kv = new KV.KVClient(proxy.Channel);
        var range = new WatchCreateRequest { Key = B(p), RangeEnd = B(p[..^1] + "0"), PrevKv = true };
        using var slowChannel = proxy.NewChannel();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var slow = new Watch.WatchClient(slowChannel).Watch(cancellationToken: stop.Token);
        await slow.RequestStream.WriteAsync(new WatchRequest { CreateRequest = range });
        Assert.True(await slow.ResponseStream.MoveNext(stop.Token) && slow.ResponseStream.Current.Created);
        await using var fast = new TwinWatch(fixture.Direct, proxy, proxy.NewChannel());
        await fast.CreateAsync(range);

        // About 4 MiB of events (previous values included) for a reader that takes none of them: far beyond what
        // HTTP/2 windows and the proxy's buffers hold, so the proxy has to stop writing to it.
        var last = 0L;
        for (var round = 0; round < 40; round++)
        {
            var txn = new TxnRequest();
            txn.Success.AddRange(Enumerable.Range(0, 5).Select(i => new RequestOp { RequestPut = new PutRequest { Key = B(p + i), Value = B($"{round}:{new string('x', 10_000)}") } }));
            last = (await kv.TxnAsync(txn, deadline: DateTime.UtcNow.AddSeconds(30))).Header.Revision;
        }

        await fast.WaitForAsync([(0, last)]);
        var sent = await fast.AssertSameAsync(controlHeaders: false);
        Assert.Equal(200, sent.Events(0).Count);

        var responses = new List<WatchResponse>();
        while (!responses.Any(r => r.Events.Any(e => e.Kv.ModRevision == last)))
        {
            Assert.True(await slow.ResponseStream.MoveNext(stop.Token), "the slow watcher's stream ended");
            responses.Add(slow.ResponseStream.Current);
        }

        var caughtUp = await WatchTranscript.ReadAsync([new WatchResponse { Created = true }, .. responses], null);
        caughtUp.AssertConsistent();
        WatchTranscript.AssertSameLines(sent.Events(0), caughtUp.Events(0), "events of watch 0");
        await stop.CancelAsync();
    }
}
