using System.Globalization;
using System.Text;
using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Report;

/// <summary>The snapshot and keep-alive parts of results.md: their setup lines, summary tables and every run.</summary>
internal static class StreamingMarkdown
{
    public static void WriteSetup(StringBuilder md, BenchReport report)
    {
        if (report.Scenarios.Contains(Scenario.Snapshot))
        {
            var fill = report.SnapshotFill is { } f
                ? string.Create(CultureInfo.InvariantCulture, $"db {f.DatabaseBytes / 1048576.0:0} MiB ({f.DatabaseBytes} B), filled once in {f.Seconds:0.0} s with {f.Puts} puts of {f.ValueBytes} random bytes, {f.Concurrency} in flight, directly into etcd (its peak RSS {f.EtcdPeakMiB:0} MiB)")
                : "not filled: " + (report.SnapshotFailure ?? "the scenario did not run");
            Line(md, $"- **Snapshot:** asked for {report.SnapshotSettings.DatabaseBytes >> 20} MiB; {fill}; one etcd for every target (plaintext listener for the proxies, mTLS listener for direct), each target's proxy started fresh in front of it; per target and round 1 cold snapshot (the first after the proxy started) + {report.SnapshotSettings.WarmSnapshots} warm; {report.Rounds} round(s), targets interleaved");
        }

        if (report.Scenarios.Contains(Scenario.KeepAlive))
        {
            var k = report.KeepAliveSettings;
            Line(md, $"- **Lease keep-alive:** {k.Leases} leases (TTL {KeepAliveSettings.LeaseTtlSeconds} s) granted through the target on a fresh etcd per target, kept alive at {k.MessagesPerSecond} messages/s in total over {string.Join(" and ", k.StreamCounts)} LeaseKeepAlive stream(s) (one row each, streams over {report.Settings.Connections} connections); {k.TargetWarmup.TotalSeconds:0.#} s unmeasured keep-alive load after each target starts, then per row {k.Warmup.TotalSeconds:0.#} s warm-up + {k.Duration.TotalSeconds:0.#} s measured; {report.Rounds} round(s)");
        }
    }

    public static void WriteSnapshots(StringBuilder md, BenchReport report)
    {
        if (!report.Scenarios.Contains(Scenario.Snapshot))
        {
            return;
        }

        md.AppendLine("## Snapshot").AppendLine();
        md.AppendLine("Maintenance.Snapshot streamed to the load generator, which counts the blob bytes (checked against etcd's db size from Status, plus its 32-byte checksum) and discards them. MB/s = db bytes ÷ seconds from request to end of stream (10⁶ B). Warm = every snapshot after the first since the target started, median; cold = the first, whose time to first byte includes compiling the proxy's snapshot path. CPU is user+system seconds of each process during one snapshot (/proc/PID/stat); peak is VmHWM during it (reset before each).").AppendLine();
        if (report.SnapshotFailure is { } failure)
        {
            Line(md, $"**Not run:** {failure}").AppendLine();
        }

        md.AppendLine("| target | MB/s warm | ratio | MB/s cold | first byte ms warm | cold | proxy CPU s | proxy peak MiB | etcd CPU s | loadgen CPU s | failure |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var x in report.SnapshotSummaries)
        {
            Line(md, $"| {x.Target.Label()} | {Opt(x.WarmMegabytesPerSecond, "0")} | {Ratio(x.RatioToMtls)} | {Opt(x.ColdMegabytesPerSecond, "0")} | {Opt(x.WarmFirstByteMs, "0.0")} | {Opt(x.ColdFirstByteMs, "0.0")} | {Opt(x.ProxyCpuSeconds, "0.00")} | {Opt(x.ProxyPeakMiB, "0")} | {Opt(x.EtcdCpuSeconds, "0.00")} | {Opt(x.LoadGenCpuSeconds, "0.00")} | {x.Failure ?? ""} |");
        }

        md.AppendLine().AppendLine("Every snapshot:").AppendLine();
        md.AppendLine("| round | target | # | MB/s | first byte ms | seconds | messages | bytes | proxy CPU s | proxy peak MiB | etcd CPU s | failure |");
        md.AppendLine("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in report.Snapshots)
        {
            Line(md, $"| {r.Round} | {r.Target.Label()} | {r.Sequence}{(r.Cold ? " (cold)" : "")} | {r.MegabytesPerSecond:0} | {r.FirstByteSeconds * 1000:0.0} | {r.Seconds:0.00} | {r.Messages} | {r.Bytes} | {Opt(r.Resources.ProxyCpuSeconds, "0.00")} | {Opt(r.Resources.ProxyPeakBytes / 1048576.0, "0")} | {r.Resources.EtcdCpuSeconds:0.00} | {r.Failure ?? ""} |");
        }

        md.AppendLine();
    }

    public static void WriteKeepAlives(StringBuilder md, BenchReport report)
    {
        if (!report.Scenarios.Contains(Scenario.KeepAlive))
        {
            return;
        }

        md.AppendLine("## Lease keep-alive").AppendLine();
        md.AppendLine("Keep-alive requests sent at a fixed rate (catching up, not skipping) and answered in order on each stream. answered/s counts answers with a positive TTL to requests sent in the measured window; latency is request to answer; CPU is user+system microseconds per answered keep-alive over the measured window (/proc/PID/stat).").AppendLine();
        md.AppendLine("| target | streams | asked/s | answered/s | p50 ms | p99 ms | proxy CPU µs/msg | etcd CPU µs/msg | loadgen CPU µs/msg | proxy peak MiB | errors |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var x in report.KeepAliveSummaries)
        {
            Line(md, $"| {x.Target.Label()} | {x.Streams} | {x.TargetPerSecond} | {x.AnsweredPerSecond:0} | {x.P50Ms:0.000} | {x.P99Ms:0.000} | {Opt(x.ProxyMicroseconds, "0.0")} | {Opt(x.EtcdMicroseconds, "0.0")} | {Opt(x.LoadGenMicroseconds, "0.0")} | {Opt(x.ProxyPeakMiB, "0")} | {x.Errors}{(x.Failure is null ? "" : " (" + x.Failure + ")")} |");
        }

        md.AppendLine();
    }

    private static StringBuilder Line(StringBuilder md, FormattableString text) => md.AppendLine(text.ToString(CultureInfo.InvariantCulture));

    private static string Ratio(double? ratio) => ratio is { } r ? r.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "–";

    private static string Opt(double? value, string format) => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "–";
}
