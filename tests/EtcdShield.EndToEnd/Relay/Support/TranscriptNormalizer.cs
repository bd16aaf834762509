using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>
/// Turns one run's transcript into lines that two runs can share: what legitimately differs between two
/// fresh etcd servers (member, cluster and lease IDs, endpoint URLs and ports, timings, database sizes and
/// hashes of stored bytes, temporary paths) is replaced by placeholders; everything else, revisions and
/// error texts included, stays as etcdctl printed it.
/// </summary>
/// <remarks>
/// IDs become <c>&lt;id:N&gt;</c> numbered by first appearance, whether printed in hex (etcdctl's text) or in
/// decimal (its JSON), so the transcript still shows which lines speak of the same lease or member.
/// </remarks>
internal sealed partial class TranscriptNormalizer
{
    private readonly Dictionary<ulong, int> ids = [];
    private readonly string endpoint;
    private readonly string endpointAuthority;
    private readonly string directory;

    private TranscriptNormalizer(ScenarioRun run)
    {
        endpoint = run.Target.Endpoint.TrimEnd('/');
        endpointAuthority = new Uri(endpoint).Authority;
        directory = run.Directory;
    }

    /// <summary>The whole transcript, one block per step.</summary>
    public static IReadOnlyList<NormalizedStep> Normalize(ScenarioRun run)
    {
        var normalizer = new TranscriptNormalizer(run);
        return run.Steps.Select(normalizer.Normalize).ToList();
    }

    private NormalizedStep Normalize(TranscriptStep step)
    {
        var lines = new List<string> { $"$ {Text(step.Command)}" };
        if (step.StandardInput is { } input)
        {
            // A large value sent on stdin is shown by its size: its bytes say nothing a reader could compare.
            lines.AddRange(SplitLines(input).Select(l => l.Length > 200 ? $"< ({l.Length} characters)" : "< " + l));
        }

        lines.Add(step.Options.HasFlag(StepOptions.KilledByTest) ? "(stopped by the test)" : $"exit {step.Result.ExitCode}");
        var stdout = SplitLines(step.Result.StdOut).Select(Text).ToList();
        var stderr = SplitLines(step.Result.StdErr).Select(Log).Where(l => l is not null).Select(l => Text(l!)).ToList();
        if (step.Options.HasFlag(StepOptions.SortLines))
        {
            stdout.Sort(StringComparer.Ordinal);
        }

        lines.AddRange(stdout.Select(l => "1| " + l));
        lines.AddRange(stderr.Select(l => "2| " + l));
        return new NormalizedStep(step, lines);
    }

    /// <summary>
    /// etcdctl's client library logs JSON (zap) lines to stderr with timestamps, source lines and a random
    /// client target; what it reports is the level, the message and the gRPC error (code and text).
    /// </summary>
    private static string? Log(string line)
    {
        if (!line.StartsWith("{\"level\":", StringComparison.Ordinal))
        {
            return line;
        }

        using var entry = JsonDocument.Parse(line);
        var root = entry.RootElement;
        var text = new StringBuilder("log ").Append(root.GetProperty("level").GetString());
        foreach (var field in (string[])["msg", "error"])
        {
            if (root.TryGetProperty(field, out var value))
            {
                text.Append(' ').Append(field).Append('=').Append(value.ToString());
            }
        }

        return text.ToString();
    }

    private string Text(string line)
    {
        line = line.Replace(directory, "<dir>", StringComparison.Ordinal)
            .Replace(endpoint, "<endpoint>", StringComparison.Ordinal)
            .Replace(endpointAuthority, "<endpoint>", StringComparison.Ordinal);
        line = OtherLoopbackUrl().Replace(line, "<url>");
        line = Took().Replace(line, "took = <duration>");
        line = JsonTook().Replace(line, "\"took\":\"<duration>\"");
        line = Remaining().Replace(line, "remaining(<ttl>)");
        line = Size().Replace(line, "<size>");
        line = JsonSize().Replace(line, m => $"\"{m.Groups[1].Value}\":<size>");
        line = JsonHash().Replace(line, "\"hash\":<hash>");
        line = SnapshotStatusHash().Replace(line, "<hash>, ");
        line = HashKv().Replace(line, "<endpoint>, <hash>");
        line = JsonId().Replace(line, m => m.Groups[3].Value == "0" ? m.Value : m.Groups[1].Value + Id(ulong.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture)));
        line = HexId().Replace(line, m => Id(ulong.Parse(m.Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        line = PaddedId().Replace(line, " <id:");
        line = AttachedKeys().Replace(line, m => $"attached keys([{string.Join(' ', m.Groups[1].Value.Split(' ').Order(StringComparer.Ordinal))}])");
        line = InitialCluster().Replace(line, m => $"ETCD_INITIAL_CLUSTER=\"{string.Join(',', m.Groups[1].Value.Split(',').Order(StringComparer.Ordinal))}\"");
        return line;
    }

    private string Id(ulong value)
    {
        if (!ids.TryGetValue(value, out var number))
        {
            number = ids.Count + 1;
            ids.Add(value, number);
        }

        return string.Create(CultureInfo.InvariantCulture, $"<id:{number}>");
    }

    private static string[] SplitLines(string text)
    {
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        return lines.Length > 0 && lines[^1].Length == 0 ? lines[..^1] : lines;
    }

    // Ports of the other servers (peer URLs); fixed low ports written by the scenario itself stay.
    [GeneratedRegex(@"https?://127\.0\.0\.1:\d{4,5}")]
    private static partial Regex OtherLoopbackUrl();

    [GeneratedRegex(@"took = [0-9.]+(ns|µs|us|ms|s|m[0-9.]+s)")]
    private static partial Regex Took();

    [GeneratedRegex(@"""took"":""[^""]*""")]
    private static partial Regex JsonTook();

    [GeneratedRegex(@"remaining\(\d+s\)")]
    private static partial Regex Remaining();

    [GeneratedRegex(@"\b\d+(\.\d+)? (B|kB|MB|GB)\b")]
    private static partial Regex Size();

    [GeneratedRegex(@"""(dbSize|dbSizeInUse|totalSize)"":\d+")]
    private static partial Regex JsonSize();

    [GeneratedRegex(@"""hash"":\d+")]
    private static partial Regex JsonHash();

    // `snapshot status`: "hash, revision, total keys, total size" (hash in %x). It covers stored bytes, which differ once encrypted.
    [GeneratedRegex(@"^[0-9a-f]{1,8}, (?=\d+, \d+, <size>$)")]
    private static partial Regex SnapshotStatusHash();

    // `endpoint hashkv`: "endpoint, hash".
    [GeneratedRegex(@"^<endpoint>, \d+$")]
    private static partial Regex HashKv();

    // JSON ("member_id":N) and `-w fields` ("MemberID" : N); a zero lease or leader means none and stays.
    [GeneratedRegex(@"(""(cluster_id|member_id|ID|lease|leader|ClusterID|MemberID|Lease|Leader)"" ?: ?)(\d+)")]
    private static partial Regex JsonId();

    // Member IDs print with %x (unpadded), lease IDs with %016x or, inside lock and election keys, %x.
    [GeneratedRegex(@"(?<![0-9A-Za-z_\\])[0-9a-f]{10,16}(?![0-9A-Za-z_])")]
    private static partial Regex HexId();

    // `member add` and friends print IDs with "%16x", padded with a varying number of spaces.
    [GeneratedRegex(@" {2,}<id:")]
    private static partial Regex PaddedId();

    // `lease timetolive --keys` lists a lease's keys in etcd's map order, which varies from run to run.
    [GeneratedRegex(@"attached keys\(\[([^\]]*)\]\)")]
    private static partial Regex AttachedKeys();

    [GeneratedRegex(@"^ETCD_INITIAL_CLUSTER=""([^""]*)""$")]
    private static partial Regex InitialCluster();
}

internal sealed record NormalizedStep(TranscriptStep Step, IReadOnlyList<string> Lines);
