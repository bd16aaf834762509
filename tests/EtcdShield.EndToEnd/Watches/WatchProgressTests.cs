using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// WatchProgressRequest: on a quiet stream the proxy answers what etcd answers; under writes, with shared watches,
/// an answer R means every event at or below R of every watch on the stream came before it (etcd 3.5's rule, which
/// kube-apiserver's consistent reads rely on; etcd 3.4 behind a relay answers at once and does not keep it).
/// </summary>
[Collection(WatchEtcd.Name)]
public sealed class WatchProgressTests(WatchFixture fixture)
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static WatchRequest Progress => new() { ProgressRequest = new WatchProgressRequest() };

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task A_progress_request_on_a_quiet_stream_is_answered_as_etcd_answers_it(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("quiet-progress");
        var load = new Workload(proxy.Channel, p);
        var past = await load.PutAsync("k1", "1");
        await using var twin = new TwinWatch(fixture.Direct, proxy, proxy.NewChannel());

        // A stream with no watch yet, then with a watch from the past that has caught up and one at head.
        await twin.SendAsync(Progress);
        var empty = (await twin.Direct.NextAsync(IsProgress), await twin.Proxied.NextAsync(IsProgress));
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p), RangeEnd = B(p[..^1] + "0"), StartRevision = past });
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k2") });
        var now = await load.PutAsync("k2", "2");
        await twin.WaitForAsync([(0, now), (1, now)]);
        await twin.SendAsync(Progress);
        var watched = (await twin.Direct.NextAsync(IsProgress), await twin.Proxied.NextAsync(IsProgress));

        await twin.AssertSameAsync();
        Assert.Equal(WatchTranscript.Describe(empty.Item1, header: true), WatchTranscript.Describe(empty.Item2, header: true));
        Assert.Equal(WatchTranscript.Describe(watched.Item1, header: true), WatchTranscript.Describe(watched.Item2, header: true));
        Assert.Equal((-1, now), (watched.Item2.WatchId, watched.Item2.Header.Revision));
    }

    [SharedWatchFact]
    public Task With_shared_watches_no_event_at_or_below_a_progress_answer_comes_after_it() => ProgressKeepsItsPromiseAsync(WatchSharing.Shared);

    /// <summary>Writers run while the stream, which has a watch catching up from the past, asks for progress again
    /// and again: each answer is at least the last revision written before it was asked for, and nothing at or
    /// below it follows.</summary>
    private async Task ProgressKeepsItsPromiseAsync(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("progress");
        var load = new Workload(proxy.Channel, p);
        var past = await load.PutAsync("k1", "first");
        await load.RunAsync(writers: 2, operations: 60, seed: 4);
        await using var twin = new TwinWatch(fixture.Direct, proxy, proxy.NewChannel());
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p), RangeEnd = B(p[..^1] + "0") });
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p + "k1"), PrevKv = true });
        await twin.CreateAsync(new WatchCreateRequest { Key = B(p), RangeEnd = B(p[..^1] + "0"), StartRevision = past, PrevKv = true });

        var written = 0L;
        var writes = Task.Run(async () =>
        {
            for (var i = 0; i < 150; i++)
            {
                var revision = await load.PutAsync(Workload.Keys[i % Workload.Keys.Length], "w" + i);
                Interlocked.Exchange(ref written, revision);
            }
        });
        var asked = new List<long>();
        var session = twin.Proxied;
        while (!writes.IsCompleted || asked.Count < 3)
        {
            asked.Add(Interlocked.Read(ref written));
            await session.SendAsync(Progress);
            await session.NextAsync(IsProgress);
        }

        await writes;
        var (_, put) = await load.CloseAsync([B(p + "k1")]);
        await twin.WaitForAsync([(0, put), (1, put), (2, put)]);

        var received = session.Received;
        var answers = received.Select((r, i) => (Response: r, Index: i)).Where(a => IsProgress(a.Response)).ToList();
        Assert.Equal(asked.Count, answers.Count);
        for (var a = 0; a < answers.Count; a++)
        {
            var (answer, index) = answers[a];
            var at = answer.Header.Revision;
            Assert.True(at >= asked[a], $"progress answer {a} at {at}, below revision {asked[a]} written before it was asked for");
            var late = received.Skip(index + 1).FirstOrDefault(r => r.Events.Any(e => e.Kv.ModRevision <= at));
            Assert.True(late is null, $"progress answer {a} at {at} came before watch {late?.WatchId}'s events from revision {late?.Events[0].Kv.ModRevision}");
        }

        // And the watches lost nothing meanwhile.
        var (direct, proxied) = await twin.TranscriptsAsync();
        proxied.AssertConsistent();
        foreach (var id in new long[] { 0, 1, 2 })
        {
            WatchTranscript.AssertSameLines(direct.Events(id), proxied.Events(id), $"events of watch {id}");
        }
    }

    private static bool IsProgress(WatchResponse r) => r.WatchId == -1 && !r.Created && !r.Canceled && r.Events.Count == 0;
}
