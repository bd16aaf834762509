using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Report;

/// <summary>
/// One target, one gateway operation, one value size over every round, summarised as the unary workloads are: the
/// median ops/s, latency over every sample, resource use per 1000 operations from the sums.
/// </summary>
internal sealed record GatewaySummary(
    TargetKind Target,
    GatewayOperation Operation,
    int ValueSize,
    IReadOnlyList<double> OpsPerSecondByRound,
    double MedianOpsPerSecond,
    double P50Ms,
    double P99Ms,
    double P999Ms,
    double? ProxyCpuPer1000,
    double? EtcdCpuPer1000,
    double? LoadGenCpuPer1000,
    double? ProxyPeakMiB,
    long Errors,
    string? Failure,
    string? NotServed)
{
    /// <summary>Median ops/s over direct mTLS etcd's own gateway on the same operation and size.</summary>
    public double? RatioToMtls { get; init; }

    public static IReadOnlyList<GatewaySummary> From(IReadOnlyList<GatewayRun> runs, IReadOnlyList<TargetKind> targets)
    {
        var summaries = targets
            .SelectMany(t => runs.Where(r => r.Target == t).GroupBy(r => (r.Operation, r.ValueSize)).Select(g => Summarize(t, g.Key.Operation, g.Key.ValueSize, [.. g])))
            .ToList();
        return [.. summaries.Select(s =>
        {
            var direct = summaries.FirstOrDefault(d => d.Target == TargetKind.EtcdMtls && d.Operation == s.Operation && d.ValueSize == s.ValueSize);
            return s with { RatioToMtls = s.Usable && direct is { Usable: true, MedianOpsPerSecond: > 0 } ? s.MedianOpsPerSecond / direct.MedianOpsPerSecond : null };
        })];
    }

    /// <summary>Measured, and nothing voided the measurement.</summary>
    public bool Usable => Failure is null && NotServed is null;

    private static GatewaySummary Summarize(TargetKind target, GatewayOperation operation, int size, List<GatewayRun> runs)
    {
        var latency = new LatencyHistogram();
        foreach (var run in runs)
        {
            latency.Add(run.Latency);
        }

        var operations = runs.Sum(r => r.Operations);
        double? Per1000(double? cpu) => cpu is { } c && operations > 0 ? c / operations * 1000 : null;
        return new GatewaySummary(
            target,
            operation,
            size,
            [.. runs.Select(r => r.OperationsPerSecond)],
            SnapshotSummary.Median(runs.Select(r => r.OperationsPerSecond)) ?? 0,
            latency.ValueAtPercentile(50) / 1e6,
            latency.ValueAtPercentile(99) / 1e6,
            latency.ValueAtPercentile(99.9) / 1e6,
            runs.All(r => r.Resources.ProxyCpuSeconds is not null) ? Per1000(runs.Sum(r => r.Resources.ProxyCpuSeconds)) : null,
            Per1000(runs.Sum(r => r.Resources.EtcdCpuSeconds)),
            Per1000(runs.Sum(r => r.Resources.LoadGenCpuSeconds)),
            runs.Max(r => r.Resources.ProxyPeakBytes) / (1024.0 * 1024),
            runs.Sum(r => r.Errors),
            runs.Select(r => r.Failure).FirstOrDefault(f => f is not null),
            runs.Select(r => r.NotServed).FirstOrDefault(n => n is not null));
    }
}
