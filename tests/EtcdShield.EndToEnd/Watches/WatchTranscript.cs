using System.Globalization;
using System.Security.Cryptography;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// What one client Watch stream received, in a form two streams can be compared in: per watch id its events in
/// order (fragments joined, values as plaintext, one line each, every field), and the stream's created and canceled
/// answers. It also checks the rules every etcd watch stream keeps, whatever the timing (<see cref="AssertConsistent"/>).
/// </summary>
internal sealed class WatchTranscript
{
    private readonly IReadOnlyList<WatchResponse> responses;
    private readonly Dictionary<long, List<string>> events;

    private WatchTranscript(IReadOnlyList<WatchResponse> responses, Dictionary<long, List<string>> events)
    {
        this.responses = responses;
        this.events = events;
    }

    public IReadOnlyList<WatchResponse> Responses => responses;

    /// <summary>The ids that received events, in order.</summary>
    public IReadOnlyList<long> WatchIds => events.Keys.Order().ToList();

    /// <param name="open">Turns a stored value into its plaintext (for a stream straight to etcd); null when the values
    /// already are plaintext (through the proxy).</param>
    public static async Task<WatchTranscript> ReadAsync(IReadOnlyList<WatchResponse> responses, Func<ByteString, ByteString, ValueTask<ByteString>>? open)
    {
        var events = new Dictionary<long, List<string>>();
        foreach (var response in responses.Where(r => r.Events.Count > 0))
        {
            if (!events.TryGetValue(response.WatchId, out var lines))
            {
                lines = [];
                events.Add(response.WatchId, lines);
            }

            foreach (var e in response.Events)
            {
                lines.Add(await RenderAsync(e, open));
            }
        }

        return new WatchTranscript(responses, events);
    }

    /// <summary>The events watch <paramref name="watchId"/> received, one line each.</summary>
    public IReadOnlyList<string> Events(long watchId) => events.TryGetValue(watchId, out var lines) ? lines : [];

    /// <summary>The created and canceled answers, in order per watch id (etcd sends a compaction's cancels of several
    /// watches in no set order); header revisions only when <paramref name="headers"/> (comparable when nothing was
    /// written while they were made).</summary>
    public IReadOnlyList<string> Control(bool headers) =>
        responses.Where(r => r.Created || r.Canceled).OrderBy(r => r.WatchId).Select(r => Describe(r, headers)).ToList();

    /// <summary>The progress answers (watch id -1, nothing else) in order.</summary>
    public IReadOnlyList<WatchResponse> ProgressAnswers =>
        responses.Where(r => r.WatchId == -1 && !r.Created && !r.Canceled && r.Events.Count == 0).ToList();

    /// <summary>
    /// The rules of an etcd watch stream: events only for a watch that is open; within a watch, revisions never go back
    /// and no (key, revision) comes twice; a response's header revision is at least that of its events, and once a
    /// whole response (the last of its fragments) came with header revision H no later event of that watch is at or
    /// below H; fragments carry events, and the fragments of one response share its header revision.
    /// </summary>
    public void AssertConsistent()
    {
        var open = new HashSet<long>();
        var delivered = new Dictionary<long, long>();
        var last = new Dictionary<long, (long Revision, HashSet<ByteString> Keys)>();
        var fragmentHeader = new Dictionary<long, long>();
        for (var i = 0; i < responses.Count; i++)
        {
            var r = responses[i];
            var at = $"response {i} ({r})";
            if (r.Created)
            {
                if (!r.Canceled)
                {
                    Assert.True(open.Add(r.WatchId), $"watch {r.WatchId} created while open: {at}");
                }

                continue;
            }

            if (r.Canceled)
            {
                Assert.True(open.Remove(r.WatchId), $"a watch that was not open was canceled: {at}");
                continue;
            }

            if (r.Events.Count == 0)
            {
                Assert.False(r.Fragment, $"a fragment without events: {at}");
                continue;
            }

            Assert.True(open.Contains(r.WatchId), $"events for a watch that is not open: {at}");
            if (fragmentHeader.TryGetValue(r.WatchId, out var header))
            {
                Assert.Equal(header, r.Header.Revision);
            }

            foreach (var e in r.Events)
            {
                var revision = e.Kv.ModRevision;
                Assert.True(revision <= r.Header.Revision, $"an event above its header revision: {at}");
                Assert.True(!delivered.TryGetValue(r.WatchId, out var upTo) || revision > upTo, $"an event at or below a revision already complete ({upTo}): {at}");
                if (last.TryGetValue(r.WatchId, out var previous) && previous.Revision == revision)
                {
                    Assert.True(previous.Keys.Add(e.Kv.Key), $"the same key twice at one revision: {at}");
                }
                else
                {
                    Assert.True(previous.Keys is null || revision > previous.Revision, $"revisions went back: {at}");
                    last[r.WatchId] = (revision, [e.Kv.Key]);
                }
            }

            if (r.Fragment)
            {
                fragmentHeader[r.WatchId] = r.Header.Revision;
            }
            else
            {
                fragmentHeader.Remove(r.WatchId);
                delivered[r.WatchId] = r.Header.Revision;
            }
        }
    }

    /// <summary>Asserts two renderings are equal, naming the first line that differs in full (xunit would cut it).</summary>
    public static void AssertSameLines(IReadOnlyList<string> expected, IReadOnlyList<string> actual, string what)
    {
        for (var i = 0; i < Math.Max(expected.Count, actual.Count); i++)
        {
            var wanted = i < expected.Count ? expected[i] : "(nothing)";
            var got = i < actual.Count ? actual[i] : "(nothing)";
            Assert.True(wanted == got, $"{what}: line {i} of {expected.Count} (etcd) / {actual.Count} (proxy) differs{Environment.NewLine}etcd:  {wanted}{Environment.NewLine}proxy: {got}");
        }
    }

    public static string Describe(WatchResponse r, bool header) =>
        string.Create(CultureInfo.InvariantCulture, $"id={r.WatchId} created={r.Created} canceled={r.Canceled} reason=\"{r.CancelReason}\" compact={r.CompactRevision}{(header ? $" rev={r.Header?.Revision}" : "")}");

    private static async Task<string> RenderAsync(Event e, Func<ByteString, ByteString, ValueTask<ByteString>>? open)
    {
        var kv = await RenderAsync(e.Kv, open);
        var prev = e.PrevKv is null ? "none" : await RenderAsync(e.PrevKv, open);
        return $"{e.Type} {kv} prev: {prev}";
    }

    private static async Task<string> RenderAsync(KeyValue kv, Func<ByteString, ByteString, ValueTask<ByteString>>? open)
    {
        // A delete's kv has no value; everything else written in these tests went through the proxy.
        var value = open is null || kv.Value.IsEmpty ? kv.Value : await open(kv.Key, kv.Value);
        return string.Create(CultureInfo.InvariantCulture, $"{kv.Key.ToStringUtf8()}={Show(value)} create={kv.CreateRevision} mod={kv.ModRevision} version={kv.Version} lease={kv.Lease}");
    }

    private static string Show(ByteString value) =>
        value.Length <= 48 ? value.ToStringUtf8() : $"<{value.Length} bytes {Convert.ToHexString(SHA256.HashData(value.Span))[..12]}>";
}
