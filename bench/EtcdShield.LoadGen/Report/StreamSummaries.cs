using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Report;

/// <summary>
/// One target's snapshots over every round: warm ones (every snapshot after the first since the target started) give
/// the throughput and the cost; the cold ones are shown beside them.
/// </summary>
internal sealed record SnapshotSummary(
    TargetKind Target,
    int WarmCount,
    double? WarmMegabytesPerSecond,
    double? ColdMegabytesPerSecond,
    double? WarmFirstByteMs,
    double? ColdFirstByteMs,
    double? ProxyCpuSeconds,
    double? ProxyPeakMiB,
    double? EtcdCpuSeconds,
    double? LoadGenCpuSeconds,
    double? EtcdPeakMiB,
    long DatabaseBytes,
    string? Failure)
{
    /// <summary>Warm MB/s over direct mTLS etcd's warm MB/s.</summary>
    public double? RatioToMtls { get; init; }

    public static IReadOnlyList<SnapshotSummary> From(IReadOnlyList<SnapshotRun> runs, IReadOnlyList<TargetKind> targets)
    {
        var summaries = targets.Select(t => Summarize(t, [.. runs.Where(r => r.Target == t)])).Where(s => s is not null).Select(s => s!).ToList();
        var direct = summaries.FirstOrDefault(s => s.Target == TargetKind.EtcdMtls)?.WarmMegabytesPerSecond;
        return [.. summaries.Select(s => s with { RatioToMtls = s.WarmMegabytesPerSecond / direct })];
    }

    private static SnapshotSummary? Summarize(TargetKind target, List<SnapshotRun> runs)
    {
        if (runs.Count == 0)
        {
            return null;
        }

        var good = runs.Where(r => r.Failure is null).ToList();
        var warm = good.Where(r => !r.Cold).ToList();
        var cold = good.Where(r => r.Cold).ToList();
        return new SnapshotSummary(
            target,
            warm.Count,
            Median(warm.Select(r => r.MegabytesPerSecond)),
            Median(cold.Select(r => r.MegabytesPerSecond)),
            Median(warm.Select(r => r.FirstByteSeconds * 1000)),
            Median(cold.Select(r => r.FirstByteSeconds * 1000)),
            Median(warm.Where(r => r.Resources.ProxyCpuSeconds is not null).Select(r => r.Resources.ProxyCpuSeconds!.Value)),
            warm.Max(r => r.Resources.ProxyPeakBytes) / (1024.0 * 1024),
            Median(warm.Select(r => r.Resources.EtcdCpuSeconds)),
            Median(warm.Select(r => r.Resources.LoadGenCpuSeconds)),
            warm.Max(r => r.Resources.EtcdPeakBytes) / (1024.0 * 1024),
            runs.Max(r => r.DatabaseBytes),
            runs.Select(r => r.Failure).FirstOrDefault(f => f is not null));
    }

    internal static double? Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return null;
        }

        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}

/// <summary>One target at one stream count over every round: the median rate, latency over every answer, CPU from the sums.</summary>
internal sealed record KeepAliveSummary(
    TargetKind Target,
    int Streams,
    int TargetPerSecond,
    double AnsweredPerSecond,
    double P50Ms,
    double P99Ms,
    double? ProxyMicroseconds,
    double? EtcdMicroseconds,
    double? LoadGenMicroseconds,
    double? ProxyPeakMiB,
    long Errors,
    string? Failure)
{
    public static IReadOnlyList<KeepAliveSummary> From(IReadOnlyList<KeepAliveRun> runs, IReadOnlyList<TargetKind> targets) =>
        [.. targets.SelectMany(t => runs.Where(r => r.Target == t).GroupBy(r => r.Streams).Select(g => Summarize(t, g.Key, [.. g])))];

    private static KeepAliveSummary Summarize(TargetKind target, int streams, List<KeepAliveRun> runs)
    {
        var latency = new LatencyHistogram();
        foreach (var run in runs)
        {
            latency.Add(run.Latency);
        }

        var answered = runs.Sum(r => r.Answered);
        double? PerMessage(double? cpu) => cpu is { } c && answered > 0 ? c / answered * 1e6 : null;
        return new KeepAliveSummary(
            target,
            streams,
            runs[0].TargetPerSecond,
            SnapshotSummary.Median(runs.Select(r => r.AnsweredPerSecond)) ?? 0,
            latency.ValueAtPercentile(50) / 1e6,
            latency.ValueAtPercentile(99) / 1e6,
            runs.All(r => r.Resources.ProxyCpuSeconds is not null) ? PerMessage(runs.Sum(r => r.Resources.ProxyCpuSeconds)) : null,
            PerMessage(runs.Sum(r => r.Resources.EtcdCpuSeconds)),
            PerMessage(runs.Sum(r => r.Resources.LoadGenCpuSeconds)),
            runs.Max(r => r.Resources.ProxyPeakBytes) / (1024.0 * 1024),
            runs.Sum(r => r.Errors),
            runs.Select(r => r.Failure).FirstOrDefault(f => f is not null));
    }
}
