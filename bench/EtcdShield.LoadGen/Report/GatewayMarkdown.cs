using System.Globalization;
using System.Text;
using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Report;

/// <summary>The HTTP/JSON gateway part of results.md: its setup line, one row per target, operation and size, and the warm-up.</summary>
internal static class GatewayMarkdown
{
    public static void WriteSetup(StringBuilder md, BenchReport report)
    {
        if (!report.Scenarios.Contains(Scenario.Gateway))
        {
            return;
        }

        var s = report.Settings;
        Line(md, $"- **HTTP/JSON gateway:** {s.Clients} closed-loop clients, JSON POST {GatewayOperation.Put.Path()} and {GatewayOperation.Range.Path()} (one key, linearizable) over HTTP/1.1 keep-alive connections (one HttpClient, up to {s.Clients} connections, the bench client certificate), {s.Warmup.TotalSeconds:0.#} s warm-up + {s.Duration.TotalSeconds:0.#} s measured per operation; fresh etcd per target per round, {s.Keys} keys per value size written through the gateway first, then unmeasured put and range slices until CPU per operation settles (at least {report.MinTargetWarmup.TotalSeconds:0.#} s, at most {report.TargetWarmup.TotalSeconds:0.#} s); {report.Rounds} round(s), targets interleaved");
    }

    public static void Write(StringBuilder md, BenchReport report)
    {
        if (!report.Scenarios.Contains(Scenario.Gateway))
        {
            return;
        }

        md.AppendLine("## HTTP/JSON gateway").AppendLine();
        md.AppendLine("etcd's documented JSON API as curl and etcd3gw use it. Direct mTLS etcd answers it with its own in-process grpc-gateway (which, in etcd 3.4, re-dials etcd's gRPC server over loopback TLS, so its CPU includes both ends); EtcdShield decodes the JSON itself and relays the request over the same path as gRPC. ops/s is the median over rounds; ratio = ops/s ÷ direct mTLS etcd's gateway on the same operation and size; CPU is user+system seconds per 1000 operations over the measured window; a range counts only when its answer carries the value put.").AppendLine();
        md.AppendLine("| target | operation | values | ops/s | ratio | p50 ms | p99 ms | p99.9 ms | proxy CPU s/1k ops | etcd CPU s/1k | loadgen CPU s/1k | proxy peak MiB | errors |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var x in report.GatewaySummaries)
        {
            if (x.NotServed is { } reason)
            {
                Line(md, $"| {x.Target.Label()} | – | – | not served | – | | | | | | | | {reason} |");
                continue;
            }

            if (x.Failure is { } failure && x.OpsPerSecondByRound.All(o => o == 0))
            {
                Line(md, $"| {x.Target.Label()} | {x.Operation.Id()} | {Workload.SizeLabel(x.ValueSize)} | **failed** | – | | | | | | | | {x.Errors} ({failure}) |");
                continue;
            }

            var range = x.OpsPerSecondByRound.Count > 1
                ? string.Create(CultureInfo.InvariantCulture, $" [{x.OpsPerSecondByRound.Min():0}–{x.OpsPerSecondByRound.Max():0}]")
                : "";
            Line(md, $"| {x.Target.Label()} | {x.Operation.Id()} | {Workload.SizeLabel(x.ValueSize)} | {x.MedianOpsPerSecond:0}{range} | {Opt(x.RatioToMtls, "0.00", "×")} | {x.P50Ms:0.000} | {x.P99Ms:0.000} | {x.P999Ms:0.000} | {Opt(x.ProxyCpuPer1000, "0.0000")} | {Opt(x.EtcdCpuPer1000, "0.0000")} | {Opt(x.LoadGenCpuPer1000, "0.0000")} | {Opt(x.ProxyPeakMiB, "0")} | {x.Errors}{(x.Failure is null ? "" : " (" + x.Failure + ")")} |");
        }

        md.AppendLine().AppendLine("Warm-up: seconds of unmeasured gateway load after each target started.").AppendLine();
        md.AppendLine("| round | target | warm-up s | settled | CPU s/1k ops at the end |").AppendLine("|---:|---|---:|---|---:|");
        foreach (var (round, target, warmUp) in report.GatewayWarmUps)
        {
            Line(md, $"| {round} | {target.Label()} | {warmUp.Seconds:0.0} | {(warmUp.Settled ? "yes" : "no")} | {Opt(warmUp.CpuPer1000, "0.0000")} |");
        }

        md.AppendLine();
    }

    private static StringBuilder Line(StringBuilder md, FormattableString text) => md.AppendLine(text.ToString(CultureInfo.InvariantCulture));

    private static string Opt(double? value, string format, string unit = "") => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) + unit : "–";
}
