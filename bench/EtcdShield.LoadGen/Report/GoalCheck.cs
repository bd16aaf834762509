using System.Globalization;
using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Report;

/// <summary>One of the acceptance goals, as measured: met, missed, or not measurable in this run.</summary>
internal sealed record GoalCheck(string Goal, string Measured, bool? Met);

internal static class GoalChecks
{
    /// <summary>The goals are stated for 1 KiB values (64 clients, 4 connections in the issue).</summary>
    public const int ReferenceSize = 1024;

    public static IReadOnlyList<GoalCheck> Evaluate(IReadOnlyList<Summary> summaries, MicrobenchResults? micro, int watchers)
    {
        var checks = new List<GoalCheck>();
        var all = summaries.Where(s => s.Workload.ValueSize == ReferenceSize).Select(s => s.Workload.Kind).Distinct().Order().ToList();
        var kinds = all.Where(k => !k.IsHostile()).ToList();

        foreach (var kind in kinds)
        {
            checks.Add(Ratio($"encrypting ≥ 1.0× etcd grpc-proxy, {kind.Id()}", summaries, kind, TargetKind.GrpcProxy, 1.0));
        }

        checks.Add(Ratio("encrypting ≥ 0.9× direct mTLS etcd, put", summaries, WorkloadKind.Put, TargetKind.EtcdMtls, 0.9));
        checks.Add(Ratio("encrypting ≥ 0.8× direct mTLS etcd, range-lin", summaries, WorkloadKind.RangeLinearizable, TargetKind.EtcdMtls, 0.8));
        foreach (var kind in kinds)
        {
            checks.Add(Ratio($"encrypting ≥ 0.97× --no-encryption, {kind.Id()}", summaries, kind, TargetKind.ShieldPlain, 0.97));
        }

        // Issue #9: the largest accepted request of each shape costs at most 2× a plain relay of the same bytes.
        foreach (var kind in all.Where(k => k.IsHostile()))
        {
            checks.Add(Ratio($"hostile {kind.Id()}: encrypting ≥ 0.5× --no-encryption (≤ 2× its cost)", summaries, kind, TargetKind.ShieldPlain, 0.5));
        }

        foreach (var (envelope, raw, label) in new[] { ("Seal", "RawEncrypt", "encrypt"), ("Open", "RawDecrypt", "decrypt") })
        {
            var ratio = micro?.Ratio(envelope, raw, ReferenceSize);
            checks.Add(new GoalCheck(
                $"envelope {label} ≤ 1.5× raw AesGcm, 1 KiB",
                ratio is { } r ? Format(r) + $" ({micro!.Mean(envelope, ReferenceSize):0} ns vs {micro.Mean(raw, ReferenceSize):0} ns)" : "not measured",
                ratio is { } m ? m <= 1.5 : null));
        }

        var encrypted = Find(summaries, WorkloadKind.Watch, TargetKind.ShieldEncrypted);
        var direct = Find(summaries, WorkloadKind.Watch, TargetKind.EtcdMtls);
        var watchGoal = $"watch put-to-event p99 added ≤ 1 ms, {watchers} watchers" + (watchers == 1000 ? "" : " (goal is stated for 1000)");
        if (encrypted is not null && direct is not null && Math.Min(encrypted.DeliveredFraction ?? 0, direct.DeliveredFraction ?? 0) < 0.99)
        {
            // Watchers that fell behind measure their own backlog, not the proxy: no verdict either way.
            checks.Add(new GoalCheck(
                watchGoal,
                string.Create(CultureInfo.InvariantCulture, $"not measurable: watchers fell behind (delivered {encrypted.DeliveredFraction:0.00} encrypting, {direct.DeliveredFraction:0.00} direct within 3 s); lower --watch-rate"),
                null));
        }
        else if (encrypted is not null && direct is not null)
        {
            var added = encrypted.P99Ms - direct.P99Ms;
            checks.Add(new GoalCheck(
                watchGoal,
                string.Create(CultureInfo.InvariantCulture, $"{added:+0.00;-0.00} ms ({encrypted.P99Ms:0.00} vs {direct.P99Ms:0.00} ms)"),
                added <= 1.0));
        }
        else
        {
            checks.Add(new GoalCheck(watchGoal, "not measured", null));
        }

        return checks;
    }

    /// <summary>Issue #10: a snapshot through EtcdShield at ≥ 0.9× the MB/s of one taken from etcd directly (warm, median).</summary>
    public static IReadOnlyList<GoalCheck> Snapshot(IReadOnlyList<SnapshotSummary> summaries)
    {
        var direct = summaries.FirstOrDefault(s => s.Target == TargetKind.EtcdMtls);
        return [.. new[] { TargetKind.ShieldPlain, TargetKind.ShieldEncrypted }.Select(kind =>
        {
            var goal = $"snapshot through {kind.Label()} ≥ 0.9× direct mTLS etcd's MB/s";
            var proxy = summaries.FirstOrDefault(s => s.Target == kind);
            return proxy?.RatioToMtls is { } ratio
                ? new GoalCheck(goal, Format(ratio) + string.Create(CultureInfo.InvariantCulture, $" ({proxy.WarmMegabytesPerSecond:0} vs {direct!.WarmMegabytesPerSecond:0} MB/s)"), ratio >= 0.9)
                : new GoalCheck(goal, "not measured", null);
        })];
    }

    /// <summary>Issue #11: gateway put and range through the encrypting proxy ≥ 0.8× the same load against etcd's own gateway over mTLS.</summary>
    public static IReadOnlyList<GoalCheck> Gateway(IReadOnlyList<GatewaySummary> summaries)
    {
        var checks = new List<GoalCheck>();
        foreach (var size in summaries.Select(s => s.ValueSize).Distinct().Order())
        {
            foreach (var operation in GatewayOperations.All)
            {
                var goal = $"gateway {operation.Id()}: encrypting ≥ 0.8× etcd's own gateway over mTLS, {Workload.SizeLabel(size)}";
                var encrypted = summaries.FirstOrDefault(s => s.Target == TargetKind.ShieldEncrypted && s.Operation == operation && s.ValueSize == size);
                var direct = summaries.FirstOrDefault(s => s.Target == TargetKind.EtcdMtls && s.Operation == operation && s.ValueSize == size);
                var missing = encrypted is null || direct is null ? "not measured"
                    : encrypted.Failure is { } f ? "not measured: encrypting failed: " + f
                    : direct.Failure is { } d ? "not measured: direct mTLS etcd failed: " + d
                    : null;
                checks.Add(missing is not null || encrypted!.RatioToMtls is not { } ratio
                    ? new GoalCheck(goal, missing ?? "not measured", null)
                    : new GoalCheck(
                        goal,
                        Format(ratio) + string.Create(CultureInfo.InvariantCulture, $" ({encrypted.MedianOpsPerSecond:0} vs {direct!.MedianOpsPerSecond:0} ops/s)"),
                        ratio >= 0.8));
            }
        }

        return checks;
    }

    private static GoalCheck Ratio(string goal, IReadOnlyList<Summary> summaries, WorkloadKind kind, TargetKind against, double threshold)
    {
        var encrypted = Find(summaries, kind, TargetKind.ShieldEncrypted);
        var other = Find(summaries, kind, against);
        if (encrypted is null || other is null || other.MedianOpsPerSecond <= 0)
        {
            return new GoalCheck(goal, "not measured", null);
        }

        var ratio = encrypted.MedianOpsPerSecond / other.MedianOpsPerSecond;
        return new GoalCheck(
            goal,
            Format(ratio) + string.Create(CultureInfo.InvariantCulture, $" ({encrypted.MedianOpsPerSecond:0} vs {other.MedianOpsPerSecond:0} ops/s)"),
            ratio >= threshold);
    }

    private static Summary? Find(IReadOnlyList<Summary> summaries, WorkloadKind kind, TargetKind target) =>
        summaries.FirstOrDefault(s => s.Workload.Kind == kind && s.Target == target && s.Workload.ValueSize == ReferenceSize);

    private static string Format(double ratio) => ratio.ToString("0.00", CultureInfo.InvariantCulture) + "×";
}
