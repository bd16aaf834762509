using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Report;

/// <summary>
/// One target on one workload over every round: the median throughput (robust to one round hit by a neighbour's
/// burst), latency percentiles over all rounds' samples, and resource use per 1000 operations from the sums.
/// </summary>
internal sealed class Summary
{
    public required Workload Workload { get; init; }

    public required BenchTarget Target { get; init; }

    public required IReadOnlyList<double> OpsPerSecondByRound { get; init; }

    public double MedianOpsPerSecond { get; init; }

    public double P50Ms { get; init; }

    public double P99Ms { get; init; }

    public double P999Ms { get; init; }

    public double MaxMs { get; init; }

    public double? ProxyCpuPer1000 { get; init; }

    public double EtcdCpuPer1000 { get; init; }

    public double LoadGenCpuPer1000 { get; init; }

    public double? ProxyPeakMiB { get; init; }

    public double? EtcdPeakMiB { get; init; }

    /// <summary>Median VmRSS inside the measured windows (the largest round's): what the process holds under the load, not at its worst moment.</summary>
    public double? ProxySteadyMiB { get; init; }

    public double? EtcdSteadyMiB { get; init; }

    /// <summary>The anonymous part (RssAnon) of the proxy's steady resident set: what it holds privately, images aside.</summary>
    public double? ProxySteadyAnonymousMiB { get; init; }

    /// <summary>Watch only: the proxy's VmRSS just before the watchers opened (the largest round's).</summary>
    public double? ProxyBeforeWatchersMiB { get; init; }

    /// <summary>The load generator's average busy cores over the measured windows (near 1 of 2 cores: it may be the bottleneck).</summary>
    public double? LoadGenCores { get; init; }

    /// <summary>Watch only: the slowest round's seconds to open every watcher.</summary>
    public double? WatchOpenSeconds { get; init; }

    public long Errors { get; init; }

    public string? Failure { get; init; }

    /// <summary>Watch only: events received over events expected (1.0 when no watcher fell behind).</summary>
    public double? DeliveredFraction { get; init; }

    /// <summary>This target's median ops/s over direct mTLS etcd's on the same workload.</summary>
    public double? RatioToMtls { get; set; }

    public static IReadOnlyList<Summary> From(IEnumerable<WorkloadRun> runs)
    {
        var summaries = runs
            .GroupBy(r => (r.Workload, r.Target))
            .Select(g => Summarize(g.Key.Workload, g.Key.Target, [.. g.OrderBy(r => r.Round)]))
            .ToList();
        foreach (var summary in summaries)
        {
            var baseline = summaries.FirstOrDefault(s => s.Workload == summary.Workload && s.Target == new BenchTarget(TargetKind.EtcdMtls));
            if (baseline is { MedianOpsPerSecond: > 0 })
            {
                summary.RatioToMtls = summary.MedianOpsPerSecond / baseline.MedianOpsPerSecond;
            }
        }

        return summaries;
    }

    private static Summary Summarize(Workload workload, BenchTarget target, List<WorkloadRun> runs)
    {
        var latency = new LatencyHistogram();
        foreach (var run in runs)
        {
            latency.Add(run.Latency);
        }

        var operations = runs.Sum(r => r.Operations);
        double? Per1000(double? cpu) => cpu is { } c && operations > 0 ? c / operations * 1000 : null;
        var expected = runs.Sum(r => r.ExpectedEvents ?? 0);
        return new Summary
        {
            Workload = workload,
            Target = target,
            OpsPerSecondByRound = [.. runs.Select(r => r.OperationsPerSecond)],
            MedianOpsPerSecond = Median(runs.Select(r => r.OperationsPerSecond)),
            P50Ms = latency.ValueAtPercentile(50) / 1e6,
            P99Ms = latency.ValueAtPercentile(99) / 1e6,
            P999Ms = latency.ValueAtPercentile(99.9) / 1e6,
            MaxMs = latency.MaxNanoseconds / 1e6,
            ProxyCpuPer1000 = runs.All(r => r.Resources.ProxyCpuSeconds is not null) ? Per1000(runs.Sum(r => r.Resources.ProxyCpuSeconds)) : null,
            EtcdCpuPer1000 = Per1000(runs.Sum(r => r.Resources.EtcdCpuSeconds)) ?? 0,
            LoadGenCpuPer1000 = Per1000(runs.Sum(r => r.Resources.LoadGenCpuSeconds)) ?? 0,
            ProxyPeakMiB = runs.Max(r => r.Resources.ProxyPeakBytes) / (1024.0 * 1024),
            EtcdPeakMiB = runs.Max(r => r.Resources.EtcdPeakBytes) / (1024.0 * 1024),
            ProxySteadyMiB = runs.Max(r => r.Resources.ProxySteadyBytes) / (1024.0 * 1024),
            EtcdSteadyMiB = runs.Max(r => r.Resources.EtcdSteadyBytes) / (1024.0 * 1024),
            ProxySteadyAnonymousMiB = runs.Max(r => r.Resources.ProxySteadyAnonymousBytes) / (1024.0 * 1024),
            ProxyBeforeWatchersMiB = runs.Max(r => r.ProxyResidentBeforeWatchers) / (1024.0 * 1024),
            LoadGenCores = runs.Max(r => r.Resources.LoadGenCores),
            WatchOpenSeconds = runs.Max(r => r.WatchOpenSeconds),
            Errors = runs.Sum(r => r.Errors),
            Failure = runs.Select(r => r.Failure).FirstOrDefault(f => f is not null),
            DeliveredFraction = expected > 0 ? (double)operations / expected : null,
        };
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return 0;
        }

        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
