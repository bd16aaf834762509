using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace EtcdShield.EndToEnd.Gateway;

/// <summary>How a step's answer is read.</summary>
internal enum GatewayStepKind
{
    /// <summary>One whole JSON document.</summary>
    Unary,

    /// <summary>A stream the server ends once it has answered every request of the body (a keep-alive): read to its end.</summary>
    ToEnd,

    /// <summary>A watch stream, read until it has delivered the newest revision the run has seen, then closed.</summary>
    WatchToLatest,

    /// <summary>
    /// A keep-alive over HTTP/2 whose body stays open, as a long-lived client holds it: the body's lines are written one at
    /// a time, each answer read before the next is written, then the body ends and so must the stream.
    /// </summary>
    MessageByMessage,

    /// <summary>A stream that goes on (an election's observe): read its first answer, then closed.</summary>
    FirstMessage,

    /// <summary>A watch stream whose body creates a watch and cancels it: read its two answers, then closed.</summary>
    WatchCreatedAndCancelled,
}

/// <summary>One raw JSON request; <c>{lease N}</c> in the body stands for the run's N-th granted lease ID.</summary>
internal sealed record GatewayStep(string Path, string Body, GatewayStepKind Kind = GatewayStepKind.Unary);

/// <summary>What one step sent and got, the answer normalised by <see cref="GatewayNormalizer"/>.</summary>
internal sealed record GatewayRecord(int Index, GatewayStep Step, string SentBody, string RawAnswer, string Answer);

/// <summary>
/// One scenario of raw JSON requests against a fresh etcd (revision 1), each answer kept as text: puts (with
/// prev_kv, one with ignore_value), ranges with sort, revision filters, limit, count_only, keys_only and range_end,
/// txns with CREATE, VALUE, VERSION and MOD compares on both branches (one nested), leases with a key attached,
/// keep-alives (one over HTTP/2 message by message), time-to-live with keys, the lease aliases under /v3/kv/lease/,
/// revoke, a lock taken and released, an election (campaign, leader, proclaim, observe), delete with prev_kv,
/// /v3beta/, watches from a past revision with prev_kv (one filtering deletes), a watch created and cancelled in one
/// body, compaction, member status and alarms. Requests mix proto and JSON field names, int64 as numbers and
/// strings and enums by name and number, as clients do; one has an unknown field, one a second JSON value after the
/// first (only the first counts), one an empty body, one a \u escape, one each field twice (the last counts). No
/// step provokes an error: Debian's etcd 3.4.23 gateway cannot answer one.
/// </summary>
internal static partial class GatewayScenario
{
    private static readonly TimeSpan StreamTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Every value the scenario writes, as text: none of them may be found at rest behind an encrypting proxy.</summary>
    public static readonly IReadOnlyList<string> PlainValues =
    [
        "gw-alpha-plain-1", "gw-alpha-plain-2", "gw-bravo-plain-1", "gw-bravo-plain-2", "gw-delta-plain-1",
        "gw-txn-success-plain", "gw-txn-failure-plain", "gw-leased-plain", "gw-echo-plain-1",
        "gw-dup-plain-1", "gw-dup-plain-2", "gw-leader-plain-1", "gw-leader-plain-2",
    ];

    /// <summary>A value with bytes that are not UTF-8 and characters JSON encoders escape differently.</summary>
    private static readonly byte[] BinaryValue = [0x00, 0xFF, 0xFE, 0x3C, 0x3E, 0x26, 0xE2, 0x80, 0xA8, 0x22];

    public static readonly IReadOnlyList<GatewayStep> Steps =
    [
        Put("/gw/a", "gw-alpha-plain-1"),
        Put("/gw/b", "gw-bravo-plain-1"),
        new("/v3/kv/put", $$$"""{"key":"{{{B("/gw/a")}}}","value":"{{{B("gw-alpha-plain-2")}}}","prev_kv":true}"""),
        new("/v3/kv/put", $$$"""{"key":"{{{B("/gw/c")}}}","value":"{{{Convert.ToBase64String(BinaryValue)}}}"}"""),
        new("/v3/kv/put", $$$"""{"key":"{{{B("/gw/d")}}}","value":"{{{B("gw-delta-plain-1")}}}","prevKv":true}"""),
        new("/v3/kv/put", $$$"""{"key":"{{{B("/gw/d")}}}","ignore_value":true,"prev_kv":true}"""),
        Range($$$"""{"key":"{{{B("/gw/")}}}","range_end":"{{{B("/gw0")}}}","sort_order":"DESCEND","sort_target":"MOD"}"""),
        Range($$$"""{"key":"{{{B("/gw/")}}}","range_end":"{{{B("/gw0")}}}","serializable":true,"min_mod_revision":"4","max_create_revision":"6","max_mod_revision":"7"}"""),
        Range($$$"""{"key":"{{{B("/gw/")}}}","range_end":"{{{B("/gw0")}}}","sort_order":"ASCEND","sort_target":"VALUE","limit":2}"""),
        Range($$$"""{"key":"{{{B("/gw/")}}}","rangeEnd":"{{{B("/gw0")}}}","sortOrder":2,"sortTarget":"KEY","limit":"3"}"""),
        Range($$$"""{"key":"{{{B("/gw/")}}}","range_end":"{{{B("/gw0")}}}","count_only":true}"""),
        Range($$$"""{"key":"{{{B("/gw/")}}}","range_end":"{{{B("/gw0")}}}","keys_only":true}"""),
        Range($$$"""{"key":"{{{B("/gw/b")}}}","no_such_field":{"nested":[1,"two",null]}}"""),
        Range($$$"""{"key":"{{{B("/gw/d")}}}"} {"key":"{{{B("/gw/a")}}}"}"""),
        Range($$$"""{"key":"{{{B("/gw/missing")}}}"}"""),
        Range("""{"key":"AA==","range_end":"AA==","keys_only":true}"""),
        Range("""{"key":"L2d3L2\u0051=","count_only":false}"""),
        new("/v3/kv/put", $$$"""{"key":"{{{B("/gx/first")}}}","value":"{{{B("gw-dup-plain-1")}}}","key":"{{{B("/gx/last")}}}","value":"{{{B("gw-dup-plain-2")}}}"}"""),
        Range($$$"""{"key":"{{{B("/gx/")}}}","range_end":"{{{B("/gx0")}}}"}"""),
        Txn($$$"""
            "compare":[{"target":"CREATE","key":"{{{B("/gw/a")}}}","create_revision":"2"}],
            "success":[{"request_put":{"key":"{{{B("/gw/t")}}}","value":"{{{B("gw-txn-success-plain")}}}"}},{"request_range":{"key":"{{{B("/gw/a")}}}"}}],
            "failure":[{"request_range":{"key":"{{{B("/gw/b")}}}"}}]
            """),
        Txn($$$"""
            "compare":[{"target":"VALUE","result":"EQUAL","key":"{{{B("/gw/b")}}}","value":"{{{B("gw-wrong")}}}"}],
            "success":[{"request_range":{"key":"{{{B("/gw/b")}}}"}}],
            "failure":[{"request_put":{"key":"{{{B("/gw/t")}}}","value":"{{{B("gw-txn-failure-plain")}}}","prev_kv":true}},{"request_delete_range":{"key":"{{{B("/gw/missing")}}}"}},{"request_range":{"key":"{{{B("/gw/")}}}","range_end":"{{{B("/gw0")}}}","count_only":true}}]
            """),
        Txn($$$"""
            "compare":[{"target":"VALUE","result":"EQUAL","key":"{{{B("/gw/b")}}}","value":"{{{B("gw-bravo-plain-1")}}}"},{"target":"VERSION","result":"GREATER","key":"{{{B("/gw/a")}}}","version":"1"}],
            "success":[{"requestRange":{"key":"{{{B("/gw/b")}}}"}}]
            """),
        Txn($$$"""
            "compare":[{"target":"VALUE","result":"NOT_EQUAL","key":"{{{B("/gw/a")}}}","value":"{{{B("gw-alpha-plain-1")}}}"},{"target":"MOD","result":"LESS","key":"{{{B("/gw/c")}}}","mod_revision":"100"}],
            "success":[{"request_txn":{"compare":[{"target":"VALUE","key":"{{{B("/gw/b")}}}","value":"{{{B("gw-bravo-plain-1")}}}"}],"success":[{"request_range":{"key":"{{{B("/gw/b")}}}"}}]}}]
            """),
        new("/v3/lease/grant", """{"TTL":60}"""),
        new("/v3/kv/put", $$$"""{"key":"{{{B("/gw/leased")}}}","value":"{{{B("gw-leased-plain")}}}","lease":"{lease 0}"}"""),
        new("/v3/lease/timetolive", """{"ID":"{lease 0}","keys":true}"""),
        new("/v3/lease/keepalive", """{"ID":"{lease 0}"}""", GatewayStepKind.ToEnd),
        new("/v3/lease/keepalive", """{"ID":"{lease 0}"} {"ID":"{lease 0}"}""", GatewayStepKind.ToEnd),
        new("/v3/lease/keepalive", "{\"ID\":\"{lease 0}\"}\n{\"ID\":{lease 0}}", GatewayStepKind.MessageByMessage),
        new("/v3/lease/grant", """{"TTL":"120","ID":0}"""),
        new("/v3/kv/lease/timetolive", """{"ID":"{lease 1}"}"""),
        new("/v3/lease/revoke", """{"ID":"{lease 0}"}"""),
        new("/v3/lease/leases", "{}"),
        new("/v3/kv/lease/revoke", """{"ID":"{lease 1}"}"""),
        new("/v3/kv/lease/leases", "{}"),
        Range($$$"""{"key":"{{{B("/gw/leased")}}}"}"""),
        new("/v3/lease/grant", """{"TTL":60}"""),
        new("/v3/lock/lock", $$$"""{"name":"{{{B("gw-lock")}}}","lease":"{lease 2}"}"""),
        new("/v3/lock/unlock", """{"key":"{key gw-lock/ 2}"}"""),
        new("/v3/election/campaign", $$$"""{"name":"{{{B("gw-elect")}}}","lease":"{lease 2}","value":"{{{B("gw-leader-plain-1")}}}"}"""),
        new("/v3/election/leader", $$$"""{"name":"{{{B("gw-elect")}}}"}"""),
        new("/v3/election/proclaim", $$$"""{"leader":{"name":"{{{B("gw-elect")}}}","key":"{key gw-elect/ 2}","rev":"{revision}","lease":"{lease 2}"},"value":"{{{B("gw-leader-plain-2")}}}"}"""),
        new("/v3/election/observe", $$$"""{"name":"{{{B("gw-elect")}}}"}""", GatewayStepKind.FirstMessage),
        new("/v3/election/leader", $$$"""{"name":"{{{B("gw-elect")}}}"}"""),
        new("/v3/kv/deleterange", $$$"""{"key":"{{{B("/gw/t")}}}","prev_kv":true}"""),
        new("/v3/kv/deleterange", $$$"""{"key":"{{{B("/gw/b")}}}","range_end":"{{{B("/gw/c")}}}","prev_kv":true}"""),
        Put("/gw/b", "gw-bravo-plain-2"),
        new("/v3beta/kv/range", $$$"""{"key":"{{{B("/gw/a")}}}"}"""),
        new("/v3beta/kv/put", $$$"""{"key":"{{{B("/gw/e")}}}","value":"{{{B("gw-echo-plain-1")}}}"}"""),
        new("/v3/watch", $$$"""{"create_request":{"key":"{{{B("/gw/")}}}","range_end":"{{{B("/gw0")}}}","start_revision":"3","prev_kv":true}}""", GatewayStepKind.WatchToLatest),
        new("/v3/watch", $$$"""{"create_request":{"key":"{{{B("/gw/")}}}","range_end":"{{{B("/gw0")}}}","start_revision":"3","filters":["NODELETE"],"prev_kv":true}}""", GatewayStepKind.WatchToLatest),
        new("/v3/watch", $$$"""{"create_request":{"key":"{{{B("/gw/a")}}}"}} {"cancel_request":{"watch_id":"0"}}""", GatewayStepKind.WatchCreatedAndCancelled),
        new("/v3/kv/compaction", """{"revision":"5","physical":true}"""),
        Range($$$"""{"key":"{{{B("/gw/a")}}}","revision":"5"}"""),
        new("/v3/maintenance/status", ""),
        new("/v3/maintenance/alarm", """{"action":"GET"}"""),
        Range($$$"""{"key":"{{{B("/gw/")}}}","range_end":"{{{B("/gw0")}}}"}"""),
    ];

    /// <summary>Runs every step in order over <paramref name="version"/>, on past a failing one, so one run shows every difference.</summary>
    public static async Task<IReadOnlyList<GatewayRecord>> RunAsync(GatewayHttp http, Version version)
    {
        var normalizer = new GatewayNormalizer();
        var leases = new List<string>();
        var records = new List<GatewayRecord>();
        long latestRevision = 0;
        for (var index = 0; index < Steps.Count; index++)
        {
            var step = Steps[index];
            var body = Placeholder().Replace(step.Body, m => Fill(m, leases, latestRevision));
            var raw = step.Kind switch
            {
                GatewayStepKind.Unary => Describe(await http.PostAsync(step.Path, body, version)),
                GatewayStepKind.ToEnd => await ReadStreamAsync(http, step.Path, body, version, line => false, toEnd: true),
                GatewayStepKind.MessageByMessage => await ExchangeAsync(http, step.Path, body),
                GatewayStepKind.FirstMessage => await ReadStreamAsync(http, step.Path, body, version, line => true),
                GatewayStepKind.WatchCreatedAndCancelled => await ReadStreamAsync(http, step.Path, body, version, line => line.Contains("\"canceled\":true", StringComparison.Ordinal)),
                _ => await ReadStreamAsync(http, step.Path, body, version, line => MaxEventRevision(line) >= latestRevision),
            };

            if (step.Path.EndsWith("/lease/grant", StringComparison.Ordinal) && GatewayNormalizer.GrantedId(raw) is { } id)
            {
                leases.Add(id);
                normalizer.LeaseGranted(id);
            }

            if (HeaderRevision().Match(raw) is { Success: true } revision)
            {
                latestRevision = Math.Max(latestRevision, long.Parse(revision.Groups[1].Value, CultureInfo.InvariantCulture));
            }

            records.Add(new GatewayRecord(index, step, normalizer.Normalize(body), raw, normalizer.Normalize(raw)));
        }

        return records;
    }

    /// <summary>The differing steps of two runs, each with what was sent, what was expected and what came; empty when they agree.</summary>
    public static string Differences(IReadOnlyList<GatewayRecord> expected, IReadOnlyList<GatewayRecord> actual)
    {
        var report = new StringBuilder();
        for (var i = 0; i < Math.Max(expected.Count, actual.Count); i++)
        {
            var want = i < expected.Count ? expected[i] : null;
            var got = i < actual.Count ? actual[i] : null;
            if (want?.Answer == got?.Answer)
            {
                continue;
            }

            var step = (want ?? got)!;
            report.AppendLine(CultureInfo.InvariantCulture, $"step {step.Index}: POST {step.Step.Path} {got?.SentBody ?? step.SentBody}");
            report.AppendLine(CultureInfo.InvariantCulture, $"  expected: {want?.Answer ?? "(no step)"}");
            report.AppendLine(CultureInfo.InvariantCulture, $"  actual:   {got?.Answer ?? "(not reached)"}");
            if (want is not null && got is not null)
            {
                var at = FirstDifference(want.Answer, got.Answer);
                report.AppendLine(CultureInfo.InvariantCulture, $"  first difference at character {at}: expected …{Around(want.Answer, at)}… actual …{Around(got.Answer, at)}…");
            }
        }

        return report.ToString();
    }

    private static GatewayStep Put(string key, string value) => new("/v3/kv/put", $$$"""{"key":"{{{B(key)}}}","value":"{{{B(value)}}}"}""");

    private static GatewayStep Range(string body) => new("/v3/kv/range", body);

    private static GatewayStep Txn(string fields) => new("/v3/kv/txn", "{" + fields.ReplaceLineEndings("") + "}");

    public static string B(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static string Describe(GatewayAnswer answer) => $"{(int)answer.Status} {answer.MediaType}\n{answer.Body}";

    private static async Task<string> ExchangeAsync(GatewayHttp http, string path, string body)
    {
        var messages = body.Split('\n');
        var content = new DuplexBody();
        var opening = http.OpenDuplexAsync(path, content);
        await content.WriteAsync(messages[0]);
        using var stream = await opening;
        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{(int)stream.Status} {stream.MediaType} HTTP/{stream.Version}");
        try
        {
            await stream.ReadLineAsync(StreamTimeout);
            foreach (var message in messages.Skip(1))
            {
                await content.WriteAsync(message);
                await stream.ReadLineAsync(StreamTimeout);
            }

            content.Complete();
            var ended = await stream.ReadLineAsync(StreamTimeout) is null;
            foreach (var line in stream.Lines)
            {
                text.Append('\n').Append(line);
            }

            return text.Append(ended ? "\n(end of stream)" : "").ToString();
        }
        catch (TimeoutException)
        {
            // An answer held back until the body ends shows here as a stall after the first message.
            return text.Append("\n(stream stalled: ").Append(stream.Lines.Count).Append(" answers)").ToString();
        }
    }

    /// <summary>The stream's answers up to the first line <paramref name="last"/> accepts, or to its end.</summary>
    private static async Task<string> ReadStreamAsync(GatewayHttp http, string path, string body, Version version, Func<string, bool> last, bool toEnd = false)
    {
        using var stream = await http.OpenStreamAsync(path, body, version);
        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{(int)stream.Status} {stream.MediaType}");
        var ended = false;
        try
        {
            if (toEnd)
            {
                // etcd ends the stream once the request body has ended and every answer is out.
                while (await stream.ReadLineAsync(StreamTimeout) is not null)
                {
                }

                ended = true;
            }
            else
            {
                await stream.ReadUntilAsync(last, StreamTimeout);
            }
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            // Kept in the transcript, so the comparison shows what the stream did deliver.
            text.Append("\n(stream stalled or ended early)");
        }

        foreach (var line in stream.Lines)
        {
            text.Append('\n').Append(line);
        }

        return ended ? text.Append("\n(end of stream)").ToString() : text.ToString();
    }

    private static long MaxEventRevision(string line)
    {
        try
        {
            using var message = JsonDocument.Parse(line);
            if (!message.RootElement.TryGetProperty("result", out var result) || !result.TryGetProperty("events", out var events))
            {
                return 0;
            }

            return events.EnumerateArray()
                .Select(e => long.Parse(e.GetProperty("kv").GetProperty("mod_revision").GetString()!, CultureInfo.InvariantCulture))
                .DefaultIfEmpty(0)
                .Max();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return 0;
        }
    }

    private static int FirstDifference(string a, string b)
    {
        var length = Math.Min(a.Length, b.Length);
        for (var i = 0; i < length; i++)
        {
            if (a[i] != b[i])
            {
                return i;
            }
        }

        return length;
    }

    private static string Around(string text, int at) => text[Math.Max(0, at - 30)..Math.Min(text.Length, at + 30)];

    /// <summary>
    /// <c>{lease N}</c>: the run's N-th lease ID; <c>{key PREFIX N}</c>: the base64 of PREFIX and that lease in hex, the key
    /// Lock and Campaign make; <c>{revision}</c>: the newest revision seen. A lease a failed grant never gave stays a
    /// placeholder, so the step shows the earlier failure's effect.
    /// </summary>
    private static string Fill(Match placeholder, List<string> leases, long latestRevision)
    {
        if (placeholder.Groups["revision"].Success)
        {
            return latestRevision.ToString(CultureInfo.InvariantCulture);
        }

        var lease = leases.ElementAtOrDefault(int.Parse(placeholder.Groups["n"].Value, CultureInfo.InvariantCulture));
        if (lease is null)
        {
            return placeholder.Value;
        }

        return placeholder.Groups["prefix"].Success
            ? B(placeholder.Groups["prefix"].Value + long.Parse(lease, CultureInfo.InvariantCulture).ToString("x", CultureInfo.InvariantCulture))
            : lease;
    }

    [GeneratedRegex(@"\{(?:lease (?<n>[0-9]+)|key (?<prefix>[^ }]+) (?<n>[0-9]+)|(?<revision>revision))\}")]
    private static partial Regex Placeholder();

    [GeneratedRegex("\"header\":\\{[^}]*\"revision\":\"([0-9]+)\"")]
    private static partial Regex HeaderRevision();
}
