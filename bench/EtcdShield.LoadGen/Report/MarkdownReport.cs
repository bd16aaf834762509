using System.Globalization;
using System.Text;
using EtcdShield.LoadGen.Load;

namespace EtcdShield.LoadGen.Report;

/// <summary>results.md: the run's setup, one table per workload, the goals, and the micro-benchmarks.</summary>
internal static class MarkdownReport
{
    public static string Write(BenchReport report)
    {
        var md = new StringBuilder();
        var s = report.Settings;
        var m = report.Machine;
        md.AppendLine("# EtcdShield benchmark results").AppendLine();
        Line(md, $"- **Command:** `{report.Command}` ({report.Mode} mode)");
        Line(md, $"- **Date:** {report.Started:yyyy-MM-dd HH:mm} – {report.Finished:HH:mm} UTC");
        Line(md, $"- **Machine:** {m.Cores} cores, {m.CpuModel}, {m.Memory} RAM, {m.Os}, kernel {m.Kernel}; load average {m.LoadAverageAtStart} at start, {report.LoadAverageAtEnd} at end");
        Line(md, $"- **Software:** {m.EtcdVersion}; {m.DotnetRuntime} (SDK {m.DotnetSdk})");
        var unary = report.Runs.Count > 0;
        if (unary)
        {
            Line(md, $"- **Load:** {s.Clients} clients over {s.Connections} connections, closed loop, {s.Warmup.TotalSeconds:0.#} s warm-up + {s.Duration.TotalSeconds:0.#} s measured per workload, {report.Rounds} round(s), targets interleaved (order rotated each round), fresh etcd per target per round, unmeasured load on every path after each target starts until its CPU per operation settles (at least {report.MinTargetWarmup.TotalSeconds:0.#} s, at most {report.TargetWarmup.TotalSeconds:0.#} s; see the end); {s.Keys} keys per value size; watch: {s.Watchers} watchers, {s.WatchPutsPerSecond:0.##} events/s each (watch: as many puts/s under one prefix; watch-keys: {s.WatchPutsPerSecond * s.Watchers:0.#} puts/s over the watchers' own keys)");
        }

        foreach (var variant in report.ShieldVariants)
        {
            Line(md, $"- **EtcdShield variant `{variant.Name}`** (rows `+{variant.Name}`): {variant.Description}");
        }

        if (report.ShieldArguments.Count > 0)
        {
            Line(md, $"- **Flags added to every EtcdShield start (--shield-args):** `{string.Join(' ', report.ShieldArguments)}`");
        }

        StreamingMarkdown.WriteSetup(md, report);
        GatewayMarkdown.WriteSetup(md, report);
        StartupMarkdown.WriteSetup(md, report);
        Line(md, $"- **Encrypting target's KEK:** {report.KeyProvider} — {report.KeyProviderDetail}");
        Line(md, $"- **etcd data:** {report.DataRoot}");
        md.AppendLine();
        if (unary)
        {
            md.AppendLine("ops/s is the median over rounds (min–max in brackets); latency percentiles are over every sample of every round; CPU is user+system seconds per 1000 operations over the measured window (/proc/PID/stat); peak is VmHWM during the workload (reset per workload). Ratio = ops/s ÷ direct mTLS etcd's on the same workload.");
            md.AppendLine();
        }

        md.AppendLine(unary ? "## Goals (1 KiB values)" : "## Goals").AppendLine();
        md.AppendLine("| goal | measured | met |").AppendLine("|---|---|---|");
        foreach (var goal in report.Goals)
        {
            Line(md, $"| {goal.Goal} | {goal.Measured} | {(goal.Met is null ? "n/a" : goal.Met.Value ? "yes" : "**no**")} |");
        }

        md.AppendLine();
        if (unary)
        {
            WriteUnary(md, report);
        }

        StreamingMarkdown.WriteSnapshots(md, report);
        StreamingMarkdown.WriteKeepAlives(md, report);
        GatewayMarkdown.Write(md, report);
        StartupMarkdown.Write(md, report);
        if (report.Microbench is { } micro)
        {
            md.AppendLine("## Micro-benchmarks (EtcdShield.Bench, BenchmarkDotNet)").AppendLine();
            if (micro.Job is not null)
            {
                Line(md, $"Job: {micro.Job}").AppendLine();
            }

            md.AppendLine("| benchmark | method | size | mean | allocated |").AppendLine("|---|---|---:|---:|---:|");
            foreach (var c in micro.Cases)
            {
                Line(md, $"| {c.Benchmark} | {c.Method} | {(c.Size is { } z ? Workload.SizeLabel(z) : "")} | {Time(c.MeanNs)} | {(c.AllocatedBytes is { } a ? a + " B" : "")} |");
            }

            md.AppendLine();
        }

        return md.ToString();
    }

    private static void WriteUnary(StringBuilder md, BenchReport report)
    {
        md.AppendLine("## Throughput ratio to direct mTLS etcd").AppendLine();
        md.Append("| workload |");
        foreach (var target in report.UnaryTargets)
        {
            md.Append(CultureInfo.InvariantCulture, $" {target.Label} |");
        }

        md.AppendLine().Append("|---|").AppendLine(string.Concat(report.UnaryTargets.Select(_ => "---:|")));
        foreach (var workload in report.Workloads)
        {
            md.Append(CultureInfo.InvariantCulture, $"| {workload.Id} |");
            foreach (var target in report.UnaryTargets)
            {
                var summary = report.Summaries.FirstOrDefault(x => x.Workload == workload && x.Target == target);
                md.Append(CultureInfo.InvariantCulture, $" {(summary?.RatioToMtls is { } r ? r.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "–")} |");
            }

            md.AppendLine();
        }

        md.AppendLine();
        md.AppendLine("## Per workload").AppendLine();
        foreach (var workload in report.Workloads)
        {
            Line(md, $"### {workload.Id}: {workload.Kind.Describe()}, {Workload.SizeLabel(workload.ValueSize)} values");
            md.AppendLine();
            if (workload.Kind.IsWatch())
            {
                WriteWatch(md, report, workload);
                continue;
            }

            md.AppendLine("| target | ops/s | ratio | p50 ms | p99 ms | p99.9 ms | proxy CPU s/1k ops | etcd CPU s/1k | loadgen CPU s/1k | proxy peak MiB | proxy steady MiB | errors |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var target in report.UnaryTargets)
            {
                var x = report.Summaries.FirstOrDefault(v => v.Workload == workload && v.Target == target);
                if (x is null)
                {
                    continue;
                }

                md.Append(CultureInfo.InvariantCulture, $"| {target.Label} | {x.MedianOpsPerSecond:0}{RoundRange(x)} | {Ratio(x.RatioToMtls)} | ");
                md.Append(CultureInfo.InvariantCulture, $"{x.P50Ms:0.000} | {x.P99Ms:0.000} | {x.P999Ms:0.000} | ");
                md.Append(CultureInfo.InvariantCulture, $"{Opt(x.ProxyCpuPer1000, "0.0000")} | {x.EtcdCpuPer1000:0.0000} | {x.LoadGenCpuPer1000:0.0000} | {Opt(x.ProxyPeakMiB, "0")} | {Opt(x.ProxySteadyMiB, "0")} | ");
                md.Append(CultureInfo.InvariantCulture, $"{x.Errors}{(x.Failure is null ? "" : " (" + x.Failure + ")")} |").AppendLine();
            }

            md.AppendLine();
        }

        md.AppendLine("## Target warm-up").AppendLine();
        md.AppendLine("Seconds of unmeasured load each target run needed before the measured process's (proxy's, else etcd's) CPU per operation settled (two 2.5 s slices within 10 %, after the minimum).").AppendLine();
        md.AppendLine("| round | target | warm-up s | settled | CPU s/1k ops at the end |").AppendLine("|---:|---|---:|---|---:|");
        foreach (var (round, target, warmUp) in report.WarmUps)
        {
            Line(md, $"| {round} | {target.Label} | {warmUp.Seconds:0.0} | {(warmUp.Settled ? "yes" : "no")} | {Opt(warmUp.CpuPer1000, "0.0000")} |");
        }

        md.AppendLine();
    }

    /// <summary>
    /// A watch workload's table: per delivered event, CPU in microseconds of each process (the issue's unit), the
    /// memory before the watchers opened (after the closed-loop warm-up), at its peak (VmHWM from then on) and steady
    /// (median VmRSS in the window, and its anonymous part), and the load
    /// generator's busy cores, so a run where it, not the target, ran out of CPU shows as such.
    /// </summary>
    private static void WriteWatch(StringBuilder md, BenchReport report, Workload workload)
    {
        md.AppendLine("| target | events/s | ratio | delivered | put→event p50 ms | p99 ms | p99.9 ms | proxy CPU µs/event | etcd CPU µs/event | loadgen CPU µs/event | loadgen cores | proxy RSS before MiB | proxy peak MiB | proxy steady MiB | proxy anon steady MiB | etcd steady MiB | open s | errors |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var target in report.UnaryTargets)
        {
            var x = report.Summaries.FirstOrDefault(v => v.Workload == workload && v.Target == target);
            if (x is null)
            {
                continue;
            }

            md.Append(CultureInfo.InvariantCulture, $"| {target.Label} | {x.MedianOpsPerSecond:0}{RoundRange(x)} | {Ratio(x.RatioToMtls)} | {Opt(x.DeliveredFraction, "0.000")} | ");
            md.Append(CultureInfo.InvariantCulture, $"{x.P50Ms:0.000} | {x.P99Ms:0.000} | {x.P999Ms:0.000} | ");
            // Seconds per 1000 events × 1000 = milliseconds per event... × 1000 again: µs per event is CPU s/1k × 1000.
            md.Append(CultureInfo.InvariantCulture, $"{Opt(x.ProxyCpuPer1000 * 1000, "0.0")} | {x.EtcdCpuPer1000 * 1000:0.0} | {x.LoadGenCpuPer1000 * 1000:0.0} | {Opt(x.LoadGenCores, "0.00")} | ");
            md.Append(CultureInfo.InvariantCulture, $"{Opt(x.ProxyBeforeWatchersMiB, "0")} | {Opt(x.ProxyPeakMiB, "0")} | {Opt(x.ProxySteadyMiB, "0")} | {Opt(x.ProxySteadyAnonymousMiB, "0")} | {Opt(x.EtcdSteadyMiB, "0")} | {Opt(x.WatchOpenSeconds, "0.0")} | ");
            md.Append(CultureInfo.InvariantCulture, $"{x.Errors}{(x.Failure is null ? "" : " (" + x.Failure + ")")} |").AppendLine();
        }

        md.AppendLine();
    }

    private static string RoundRange(Summary x) => x.OpsPerSecondByRound.Count > 1
        ? string.Create(CultureInfo.InvariantCulture, $" [{x.OpsPerSecondByRound.Min():0}–{x.OpsPerSecondByRound.Max():0}]")
        : "";

    private static StringBuilder Line(StringBuilder md, FormattableString text) => md.AppendLine(text.ToString(CultureInfo.InvariantCulture));

    private static string Ratio(double? ratio) => ratio is { } r ? r.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "–";

    private static string Opt(double? value, string format) => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "–";

    private static string Time(double ns) => ns switch
    {
        >= 1e6 => (ns / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " ms",
        >= 1e3 => (ns / 1e3).ToString("0.00", CultureInfo.InvariantCulture) + " µs",
        _ => ns.ToString("0.0", CultureInfo.InvariantCulture) + " ns",
    };
}
