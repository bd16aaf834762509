using System.Globalization;
using System.Text;
using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Report;

/// <summary>The start-up and memory part of results.md (issue #12): one summary row per target and build, then the first seconds one by one.</summary>
internal static class StartupMarkdown
{
    private const double MiB = 1048576.0;

    public static void WriteSetup(StringBuilder md, BenchReport report)
    {
        if (!report.Scenarios.Contains(Scenario.Startup) || report.StartupSettings is not { } s)
        {
            return;
        }

        Line(md, $"- **Start-up and memory:** each target started cold on a fresh etcd already holding {report.Settings.Keys} keys of {Workload.SizeLabel(report.StartupRuns.Count > 0 ? report.StartupRuns[0].ValueSize : 0)} values; a client polls a linearizable Range on a new connection every 5 ms from the exec; launch 1 then sits idle {s.Idle.TotalSeconds:0} s (idle RSS = VmRSS then), launch 2 gets {s.LoadSeconds} s of closed-loop {s.Workload.Id()} from its first answer ({report.Settings.Clients} clients over {report.Settings.Connections} connections), counted per second; steady = the last {s.SteadySeconds} s; launch 3 (EtcdShield) has a JSON gateway range as its first request; {report.Rounds} round(s), targets rotated");
        foreach (var build in report.ShieldBuilds)
        {
            Line(md, $"- **EtcdShield build:** {build}");
        }

        if (report.ShieldEnvironment.Count > 0)
        {
            Line(md, $"- **EtcdShield environment added:** {string.Join(", ", report.ShieldEnvironment.Select(e => $"`{e.Key}={e.Value}`"))}");
        }
    }

    public static IReadOnlyList<GoalCheck> Goals(IReadOnlyList<StartupRun> runs)
    {
        var checks = new List<GoalCheck>();
        var proxy = Rows(runs).FirstOrDefault(r => r.Variant == "grpc-proxy");
        foreach (var row in Rows(runs).Where(r => r.Target is TargetKind.ShieldPlain or TargetKind.ShieldEncrypted))
        {
            checks.Add(new GoalCheck(
                $"start-up, {row.Variant}: first 10 s throughput ≥ 0.8× steady",
                Ratio(row.ColdRatio), row.ColdRatio is { } c ? c >= 0.8 : null));
            if (proxy is null)
            {
                continue;
            }

            foreach (var (what, mine, theirs) in new[] { ("idle", row.IdleMiB, proxy.IdleMiB), ("steady load", row.SteadyMiB, proxy.SteadyMiB) })
            {
                var ratio = mine / theirs;
                checks.Add(new GoalCheck(
                    $"memory, {row.Variant}: RSS at {what} ≤ 2× grpc-proxy's",
                    string.Create(CultureInfo.InvariantCulture, $"{mine:0} vs {theirs:0} MiB = {ratio:0.00}×"),
                    ratio is { } r ? r <= 2.0 : null));
            }
        }

        return checks;
    }

    public static void Write(StringBuilder md, BenchReport report)
    {
        if (!report.Scenarios.Contains(Scenario.Startup) || report.StartupSettings is not { } s)
        {
            return;
        }

        md.AppendLine("## Start-up and memory").AppendLine();
        Line(md, $"Medians over rounds. *exec → first answer*: from the exec of the measured process to its first answered linearizable Range (idle launch / loaded launch); *ready line*: to its own ready log line. *first 10 s*: requests answered in the 10 s after the first answer ÷ 10 s of its own steady state (the last {s.SteadySeconds} s of {s.LoadSeconds}); *CPU/req first 10 s*: CPU per answered request then ÷ steady; *hot for*: from the first 5-s bucket on whose CPU per request stays within 1.2× steady. RSS: VmRSS after {s.Idle.TotalSeconds:0} s idle; under load VmHWM since exec (peak) and median VmRSS over the steady window; *anon*: RssAnon, the resident set without mapped images (RssFile, which for the JIT build is the framework's and the app's images, for the Native AOT program its one image) and shared memory. The etcd row is etcd itself over mTLS (exec → first answer of a fresh member; its load after the key space was written).");
        md.AppendLine();
        md.AppendLine("| target | exec → first answer ms | ready line ms | gateway first answer ms | first 10 s ÷ steady | CPU/req first 10 s ÷ steady | hot for s | steady ops/s | steady CPU ms/1k req | RSS idle MiB | RSS load peak MiB | RSS load steady MiB | anon idle / load steady MiB | errors |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var row in Rows(report.StartupRuns))
        {
            if (row.Failure is { } failure && row.SteadyOps is null)
            {
                Line(md, $"| {row.Label} | **failed** | | | | | | | | | | | | {failure} |");
                continue;
            }

            Line(md, $"| {row.Label} | {row.FirstAnswer} | {Opt(row.ReadyLineMs, "0")} | {Opt(row.GatewayMs, "0")} | {Ratio(row.ColdRatio)} | {Ratio(row.ColdCpuRatio)} | {Opt(row.HotFor, "0")} | {Opt(row.SteadyOps, "0")} | {Opt(row.SteadyCpuMsPer1k, "0.0")} | {Opt(row.IdleMiB, "0")} | {Opt(row.PeakMiB, "0")} | {Opt(row.SteadyMiB, "0")} | {Opt(row.IdleAnonMiB, "0")} / {Opt(row.SteadyAnonMiB, "0")} | {row.Errors}{(row.Failure is null ? "" : " (" + row.Failure + ")")} |");
        }

        md.AppendLine().AppendLine("Each second after the first answer, round by round: throughput ÷ steady, then CPU per request ÷ steady.").AppendLine();
        md.Append("| round | target | measure |");
        for (var second = 1; second <= StartupSettings.ColdSeconds; second++)
        {
            md.Append(CultureInfo.InvariantCulture, $" s{second} |");
        }

        md.AppendLine(" 10-20 s | 20-30 s | 30-40 s | 40-50 s | 50-60 s |");
        md.Append("|---:|---|---|").Append(string.Concat(Enumerable.Repeat("---:|", StartupSettings.ColdSeconds + 5))).AppendLine();
        foreach (var run in report.StartupRuns.Where(r => r.OpsPerSecond.Length > 0))
        {
            md.Append(CultureInfo.InvariantCulture, $"| {run.Round} | {run.Label} | ops |");
            for (var second = 0; second < StartupSettings.ColdSeconds; second++)
            {
                md.Append(' ').Append(Ratio(run.SecondRatio(second), unit: "")).Append(" |");
            }

            for (var from = 10; from < 60; from += 10)
            {
                var ops = run.OpsPerSecond.Skip(from).Take(10).ToList();
                md.Append(' ').Append(ops.Count == 10 && run.SteadyOpsPerSecond > 0 ? Ratio(ops.Sum() / 10.0 / run.SteadyOpsPerSecond, unit: "") : "").Append(" |");
            }

            md.AppendLine();
            md.Append(CultureInfo.InvariantCulture, $"| {run.Round} | {run.Label} | CPU/req |");
            for (var second = 0; second < StartupSettings.ColdSeconds; second++)
            {
                md.Append(' ').Append(Ratio(run.CpuRatio(second, 1), unit: "")).Append(" |");
            }

            for (var from = 10; from < 60; from += 10)
            {
                md.Append(' ').Append(from + 10 <= run.OpsPerSecond.Length ? Ratio(run.CpuRatio(from, 10), unit: "") : "").Append(" |");
            }

            md.AppendLine();
        }

        md.AppendLine();
    }

    /// <summary>One row per target and build: medians over its rounds.</summary>
    internal static IEnumerable<StartupRow> Rows(IReadOnlyList<StartupRun> runs) =>
        runs.GroupBy(r => r.Variant).Select(g =>
        {
            var ok = g.Where(r => r.OpsPerSecond.Length > 0).ToList();
            var first = g.First();
            return new StartupRow(
                first.Variant,
                first.Label,
                first.Target,
                ok.Count == 0 ? "–" : string.Join(" / ", Enumerable.Range(0, ok.Max(r => r.FirstAnswerMs.Count))
                    .Select(i => Median(ok.Where(r => r.FirstAnswerMs.Count > i).Select(r => (double?)r.FirstAnswerMs[i]))?.ToString("0", CultureInfo.InvariantCulture) ?? "–")),
                Median(ok.Select(r => r.ReadyLineMs)),
                Median(ok.Select(r => r.GatewayFirstAnswerMs)),
                Median(ok.Select(r => r.ColdThroughputRatio)),
                Median(ok.Select(r => r.ColdCpuRatio)),
                Median(ok.Select(r => (double?)r.SettledAfterSeconds)),
                Median(ok.Select(r => (double?)r.SteadyOpsPerSecond)),
                Median(ok.Select(r => r.SteadyCpuPerOp * 1e6)),
                Median(ok.Select(r => r.IdleRssBytes / MiB)),
                Median(ok.Select(r => r.LoadPeakBytes / MiB)),
                Median(ok.Select(r => r.SteadyRssBytes / MiB)),
                Median(ok.Select(r => r.IdleAnonBytes / MiB)),
                Median(ok.Select(r => r.SteadyAnonBytes / MiB)),
                g.Sum(r => r.Errors),
                g.Select(r => r.Failure).FirstOrDefault(f => f is not null));
        });

    internal sealed record StartupRow(
        string Variant,
        string Label,
        TargetKind Target,
        string FirstAnswer,
        double? ReadyLineMs,
        double? GatewayMs,
        double? ColdRatio,
        double? ColdCpuRatio,
        double? HotFor,
        double? SteadyOps,
        double? SteadyCpuMsPer1k,
        double? IdleMiB,
        double? PeakMiB,
        double? SteadyMiB,
        double? IdleAnonMiB,
        double? SteadyAnonMiB,
        long Errors,
        string? Failure);

    private static double? Median(IEnumerable<double?> values)
    {
        var sorted = values.Where(v => v.HasValue).Select(v => v!.Value).Order().ToList();
        return sorted.Count == 0 ? null : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Ratio(double? value, string unit = "×") => Opt(value, "0.00", unit);

    private static StringBuilder Line(StringBuilder md, FormattableString text) => md.AppendLine(text.ToString(CultureInfo.InvariantCulture));

    private static string Opt(double? value, string format, string unit = "") => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) + unit : "–";
}
