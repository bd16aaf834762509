using System.Text.Json;
using System.Text.Json.Nodes;
using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Report;

/// <summary>results.json: the same data as results.md plus every round's raw numbers, for scripts and comparisons.</summary>
internal static class JsonReport
{
    public static string Write(BenchReport report)
    {
        var s = report.Settings;
        var root = new JsonObject
        {
            ["command"] = report.Command,
            ["mode"] = report.Mode,
            ["started"] = report.Started.ToString("O"),
            ["finished"] = report.Finished.ToString("O"),
            ["machine"] = JsonSerializer.SerializeToNode(report.Machine, MachineJson.Default.MachineInfo),
            ["loadAverageAtEnd"] = report.LoadAverageAtEnd,
            ["settings"] = new JsonObject
            {
                ["clients"] = s.Clients,
                ["connections"] = s.Connections,
                ["warmupSeconds"] = s.Warmup.TotalSeconds,
                ["durationSeconds"] = s.Duration.TotalSeconds,
                ["rounds"] = report.Rounds,
                ["targetWarmupMaxSeconds"] = report.TargetWarmup.TotalSeconds,
                ["targetWarmupMinSeconds"] = report.MinTargetWarmup.TotalSeconds,
                ["keysPerValueSize"] = s.Keys,
                ["watchers"] = s.Watchers,
                ["watchPutsPerSecond"] = s.WatchPutsPerSecond,
                ["etcdDataRoot"] = report.DataRoot,
            },
            ["keyProvider"] = new JsonObject { ["provider"] = report.KeyProvider, ["detail"] = report.KeyProviderDetail },
            ["targets"] = new JsonArray([.. report.UnaryTargets.Select(t => (JsonNode)new JsonObject
            {
                ["id"] = t.Id,
                ["label"] = t.Label,
                ["variant"] = report.ShieldVariants.FirstOrDefault(v => v.Name == t.Variant)?.Description,
            })]),
            ["shieldArguments"] = new JsonArray([.. report.ShieldArguments.Select(a => (JsonNode)a)]),
            ["warmUps"] = new JsonArray([.. report.WarmUps.Select(w => (JsonNode)new JsonObject
            {
                ["round"] = w.Round,
                ["target"] = w.Target.Id,
                ["seconds"] = w.WarmUp.Seconds,
                ["settled"] = w.WarmUp.Settled,
                ["cpuSecondsPer1000"] = w.WarmUp.CpuPer1000,
            })]),
            ["goals"] = new JsonArray([.. report.Goals.Select(g => (JsonNode)new JsonObject { ["goal"] = g.Goal, ["measured"] = g.Measured, ["met"] = g.Met })]),
            ["summary"] = new JsonArray([.. report.Summaries.Select(Summary)]),
            ["runs"] = new JsonArray([.. report.Runs.Select(r => (JsonNode)new JsonObject
            {
                ["round"] = r.Round,
                ["target"] = r.Target.Id,
                ["workload"] = r.Workload.Kind.Id(),
                ["valueSize"] = r.Workload.ValueSize,
                ["operations"] = r.Operations,
                ["seconds"] = r.Seconds,
                ["opsPerSecond"] = r.OperationsPerSecond,
                ["p50Ms"] = r.Latency.ValueAtPercentile(50) / 1e6,
                ["p99Ms"] = r.Latency.ValueAtPercentile(99) / 1e6,
                ["p999Ms"] = r.Latency.ValueAtPercentile(99.9) / 1e6,
                ["maxMs"] = r.Latency.MaxNanoseconds / 1e6,
                ["errors"] = r.Errors,
                ["errorsByCode"] = new JsonObject([.. r.ErrorsByCode.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))]),
                ["proxyCpuSeconds"] = r.Resources.ProxyCpuSeconds,
                ["etcdCpuSeconds"] = r.Resources.EtcdCpuSeconds,
                ["loadGenCpuSeconds"] = r.Resources.LoadGenCpuSeconds,
                ["proxyPeakBytes"] = r.Resources.ProxyPeakBytes,
                ["etcdPeakBytes"] = r.Resources.EtcdPeakBytes,
                ["proxySteadyBytes"] = r.Resources.ProxySteadyBytes,
                ["etcdSteadyBytes"] = r.Resources.EtcdSteadyBytes,
                ["proxySteadyAnonymousBytes"] = r.Resources.ProxySteadyAnonymousBytes,
                ["windowSeconds"] = r.Resources.WindowSeconds,
                ["loadGenCores"] = r.Resources.LoadGenCores,
                ["watchOpenSeconds"] = r.WatchOpenSeconds,
                ["proxyResidentBeforeWatchersBytes"] = r.ProxyResidentBeforeWatchers,
                ["txnSucceeded"] = r.TxnSucceeded,
                ["txnFailed"] = r.TxnFailed,
                ["watchers"] = r.Watchers,
                ["puts"] = r.Puts,
                ["expectedEvents"] = r.ExpectedEvents,
                ["failure"] = r.Failure,
            })]),
        };
        root["scenarios"] = new JsonArray([.. report.Scenarios.Select(x => (JsonNode)x.Id())]);
        if (report.Scenarios.Contains(Scenario.Snapshot))
        {
            root["snapshot"] = Snapshot(report);
        }

        if (report.Scenarios.Contains(Scenario.KeepAlive))
        {
            root["keepAlive"] = KeepAlive(report);
        }

        if (report.Scenarios.Contains(Scenario.Gateway))
        {
            root["gateway"] = Gateway(report);
        }

        if (report.Scenarios.Contains(Scenario.Startup))
        {
            root["startup"] = Startup(report);
        }

        if (report.Microbench is { } micro)
        {
            root["microbench"] = new JsonObject
            {
                ["job"] = micro.Job,
                ["cases"] = new JsonArray([.. micro.Cases.Select(c => (JsonNode)new JsonObject
                {
                    ["benchmark"] = c.Benchmark,
                    ["method"] = c.Method,
                    ["size"] = c.Size,
                    ["meanNs"] = c.MeanNs,
                    ["errorNs"] = c.ErrorNs,
                    ["allocatedBytes"] = c.AllocatedBytes,
                })]),
            };
        }

        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static JsonObject Snapshot(BenchReport report) => new()
    {
        ["databaseBytesAsked"] = report.SnapshotSettings.DatabaseBytes,
        ["warmSnapshotsPerTarget"] = report.SnapshotSettings.WarmSnapshots,
        ["failure"] = report.SnapshotFailure,
        ["fill"] = report.SnapshotFill is { } f
            ? new JsonObject
            {
                ["databaseBytes"] = f.DatabaseBytes,
                ["puts"] = f.Puts,
                ["valueBytes"] = f.ValueBytes,
                ["concurrency"] = f.Concurrency,
                ["seconds"] = f.Seconds,
                ["etcdPeakMiB"] = f.EtcdPeakMiB,
            }
            : null,
        ["summary"] = new JsonArray([.. report.SnapshotSummaries.Select(x => (JsonNode)new JsonObject
        {
            ["target"] = x.Target.Id(),
            ["warmSnapshots"] = x.WarmCount,
            ["megabytesPerSecondWarmMedian"] = x.WarmMegabytesPerSecond,
            ["ratioToDirectMtls"] = x.RatioToMtls,
            ["megabytesPerSecondCold"] = x.ColdMegabytesPerSecond,
            ["firstByteMsWarm"] = x.WarmFirstByteMs,
            ["firstByteMsCold"] = x.ColdFirstByteMs,
            ["proxyCpuSeconds"] = x.ProxyCpuSeconds,
            ["proxyPeakMiB"] = x.ProxyPeakMiB,
            ["etcdCpuSeconds"] = x.EtcdCpuSeconds,
            ["loadGenCpuSeconds"] = x.LoadGenCpuSeconds,
            ["etcdPeakMiB"] = x.EtcdPeakMiB,
            ["databaseBytes"] = x.DatabaseBytes,
            ["failure"] = x.Failure,
        })]),
        ["runs"] = new JsonArray([.. report.Snapshots.Select(r => (JsonNode)new JsonObject
        {
            ["round"] = r.Round,
            ["target"] = r.Target.Id(),
            ["sequence"] = r.Sequence,
            ["cold"] = r.Cold,
            ["databaseBytes"] = r.DatabaseBytes,
            ["bytes"] = r.Bytes,
            ["messages"] = r.Messages,
            ["firstByteSeconds"] = r.FirstByteSeconds,
            ["seconds"] = r.Seconds,
            ["megabytesPerSecond"] = r.MegabytesPerSecond,
            ["proxyCpuSeconds"] = r.Resources.ProxyCpuSeconds,
            ["etcdCpuSeconds"] = r.Resources.EtcdCpuSeconds,
            ["loadGenCpuSeconds"] = r.Resources.LoadGenCpuSeconds,
            ["proxyPeakBytes"] = r.Resources.ProxyPeakBytes,
            ["etcdPeakBytes"] = r.Resources.EtcdPeakBytes,
            ["failure"] = r.Failure,
        })]),
    };

    private static JsonObject KeepAlive(BenchReport report)
    {
        var k = report.KeepAliveSettings;
        return new JsonObject
        {
            ["leases"] = k.Leases,
            ["leaseTtlSeconds"] = KeepAliveSettings.LeaseTtlSeconds,
            ["messagesPerSecond"] = k.MessagesPerSecond,
            ["streamCounts"] = new JsonArray([.. k.StreamCounts.Select(c => (JsonNode)c)]),
            ["targetWarmupSeconds"] = k.TargetWarmup.TotalSeconds,
            ["warmupSeconds"] = k.Warmup.TotalSeconds,
            ["durationSeconds"] = k.Duration.TotalSeconds,
            ["summary"] = new JsonArray([.. report.KeepAliveSummaries.Select(x => (JsonNode)new JsonObject
            {
                ["target"] = x.Target.Id(),
                ["streams"] = x.Streams,
                ["askedPerSecond"] = x.TargetPerSecond,
                ["answeredPerSecondMedian"] = x.AnsweredPerSecond,
                ["p50Ms"] = x.P50Ms,
                ["p99Ms"] = x.P99Ms,
                ["proxyCpuMicrosecondsPerMessage"] = x.ProxyMicroseconds,
                ["etcdCpuMicrosecondsPerMessage"] = x.EtcdMicroseconds,
                ["loadGenCpuMicrosecondsPerMessage"] = x.LoadGenMicroseconds,
                ["proxyPeakMiB"] = x.ProxyPeakMiB,
                ["errors"] = x.Errors,
                ["failure"] = x.Failure,
            })]),
            ["runs"] = new JsonArray([.. report.KeepAlives.Select(r => (JsonNode)new JsonObject
            {
                ["round"] = r.Round,
                ["target"] = r.Target.Id(),
                ["streams"] = r.Streams,
                ["sent"] = r.Sent,
                ["answered"] = r.Answered,
                ["seconds"] = r.Seconds,
                ["answeredPerSecond"] = r.AnsweredPerSecond,
                ["p50Ms"] = r.Latency.ValueAtPercentile(50) / 1e6,
                ["p99Ms"] = r.Latency.ValueAtPercentile(99) / 1e6,
                ["errors"] = r.Errors,
                ["errorsByCode"] = new JsonObject([.. r.ErrorsByCode.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))]),
                ["proxyCpuSeconds"] = r.Resources.ProxyCpuSeconds,
                ["etcdCpuSeconds"] = r.Resources.EtcdCpuSeconds,
                ["loadGenCpuSeconds"] = r.Resources.LoadGenCpuSeconds,
                ["proxyPeakBytes"] = r.Resources.ProxyPeakBytes,
                ["failure"] = r.Failure,
            })]),
        };
    }

    private static JsonObject Gateway(BenchReport report) => new()
    {
        ["connections"] = report.Settings.Clients,
        ["httpVersion"] = "1.1",
        ["summary"] = new JsonArray([.. report.GatewaySummaries.Select(x => (JsonNode)new JsonObject
        {
            ["target"] = x.Target.Id(),
            ["operation"] = x.Operation.Id(),
            ["valueSize"] = x.ValueSize,
            ["opsPerSecondMedian"] = x.MedianOpsPerSecond,
            ["opsPerSecondByRound"] = new JsonArray([.. x.OpsPerSecondByRound.Select(v => (JsonNode)v)]),
            ["ratioToDirectMtls"] = x.RatioToMtls,
            ["p50Ms"] = x.P50Ms,
            ["p99Ms"] = x.P99Ms,
            ["p999Ms"] = x.P999Ms,
            ["proxyCpuSecondsPer1000"] = x.ProxyCpuPer1000,
            ["etcdCpuSecondsPer1000"] = x.EtcdCpuPer1000,
            ["loadGenCpuSecondsPer1000"] = x.LoadGenCpuPer1000,
            ["proxyPeakMiB"] = x.ProxyPeakMiB,
            ["errors"] = x.Errors,
            ["failure"] = x.Failure,
            ["notServed"] = x.NotServed,
        })]),
        ["warmUps"] = new JsonArray([.. report.GatewayWarmUps.Select(w => (JsonNode)new JsonObject
        {
            ["round"] = w.Round,
            ["target"] = w.Target.Id(),
            ["seconds"] = w.WarmUp.Seconds,
            ["settled"] = w.WarmUp.Settled,
            ["cpuSecondsPer1000"] = w.WarmUp.CpuPer1000,
        })]),
        ["runs"] = new JsonArray([.. report.GatewayRuns.Select(r => (JsonNode)new JsonObject
        {
            ["round"] = r.Round,
            ["target"] = r.Target.Id(),
            ["operation"] = r.Operation.Id(),
            ["valueSize"] = r.ValueSize,
            ["operations"] = r.Operations,
            ["seconds"] = r.Seconds,
            ["opsPerSecond"] = r.OperationsPerSecond,
            ["p50Ms"] = r.Latency.ValueAtPercentile(50) / 1e6,
            ["p99Ms"] = r.Latency.ValueAtPercentile(99) / 1e6,
            ["p999Ms"] = r.Latency.ValueAtPercentile(99.9) / 1e6,
            ["errors"] = r.Errors,
            ["errorsByCode"] = new JsonObject([.. r.ErrorsByCode.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))]),
            ["proxyCpuSeconds"] = r.Resources.ProxyCpuSeconds,
            ["etcdCpuSeconds"] = r.Resources.EtcdCpuSeconds,
            ["loadGenCpuSeconds"] = r.Resources.LoadGenCpuSeconds,
            ["proxyPeakBytes"] = r.Resources.ProxyPeakBytes,
            ["etcdPeakBytes"] = r.Resources.EtcdPeakBytes,
            ["failure"] = r.Failure,
            ["notServed"] = r.NotServed,
        })]),
    };

    private static JsonObject Summary(Summary x) => new()
    {
        ["workload"] = x.Workload.Kind.Id(),
        ["valueSize"] = x.Workload.ValueSize,
        ["target"] = x.Target.Id,
        ["opsPerSecondMedian"] = x.MedianOpsPerSecond,
        ["opsPerSecondByRound"] = new JsonArray([.. x.OpsPerSecondByRound.Select(v => (JsonNode)v)]),
        ["ratioToDirectMtls"] = x.RatioToMtls,
        ["p50Ms"] = x.P50Ms,
        ["proxySteadyMiB"] = x.ProxySteadyMiB,
        ["etcdSteadyMiB"] = x.EtcdSteadyMiB,
        ["proxySteadyAnonymousMiB"] = x.ProxySteadyAnonymousMiB,
        ["proxyBeforeWatchersMiB"] = x.ProxyBeforeWatchersMiB,
        ["loadGenCores"] = x.LoadGenCores,
        ["watchOpenSeconds"] = x.WatchOpenSeconds,
        ["p99Ms"] = x.P99Ms,
        ["p999Ms"] = x.P999Ms,
        ["maxMs"] = x.MaxMs,
        ["proxyCpuSecondsPer1000"] = x.ProxyCpuPer1000,
        ["etcdCpuSecondsPer1000"] = x.EtcdCpuPer1000,
        ["loadGenCpuSecondsPer1000"] = x.LoadGenCpuPer1000,
        ["proxyPeakMiB"] = x.ProxyPeakMiB,
        ["etcdPeakMiB"] = x.EtcdPeakMiB,
        ["errors"] = x.Errors,
        ["deliveredFraction"] = x.DeliveredFraction,
        ["failure"] = x.Failure,
    };

    private static JsonObject Startup(BenchReport report) => new()
    {
        ["idleSeconds"] = report.StartupSettings?.Idle.TotalSeconds,
        ["loadSeconds"] = report.StartupSettings?.LoadSeconds,
        ["steadySeconds"] = report.StartupSettings?.SteadySeconds,
        ["workload"] = report.StartupSettings?.Workload.Id(),
        ["shieldBuilds"] = new JsonArray([.. report.ShieldBuilds.Select(b => (JsonNode?)b)]),
        ["shieldEnvironment"] = new JsonObject([.. report.ShieldEnvironment.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))]),
        ["runs"] = new JsonArray([.. report.StartupRuns.Select(r => (JsonNode)new JsonObject
        {
            ["round"] = r.Round,
            ["variant"] = r.Variant,
            ["label"] = r.Label,
            ["howRun"] = r.HowRun,
            ["etcdFirstAnswerMs"] = r.EtcdFirstAnswerMs,
            ["firstAnswerMs"] = new JsonArray([.. r.FirstAnswerMs.Select(m => (JsonNode?)m)]),
            ["readyLineMs"] = r.ReadyLineMs,
            ["gatewayFirstAnswerMs"] = r.GatewayFirstAnswerMs,
            ["idleRssBytes"] = r.IdleRssBytes,
            ["idlePeakBytes"] = r.IdlePeakBytes,
            ["idleAnonBytes"] = r.IdleAnonBytes,
            ["steadyAnonBytes"] = r.SteadyAnonBytes,
            ["loadPeakBytes"] = r.LoadPeakBytes,
            ["steadyRssBytes"] = r.SteadyRssBytes,
            ["steadyOpsPerSecond"] = r.SteadyOpsPerSecond,
            ["steadyCpuSecondsPerOp"] = r.SteadyCpuPerOp,
            ["first10sThroughputRatio"] = r.ColdThroughputRatio,
            ["first10sCpuPerOpRatio"] = r.ColdCpuRatio,
            ["hotForSeconds"] = r.SettledAfterSeconds,
            ["opsPerSecond"] = new JsonArray([.. r.OpsPerSecond.Select(o => (JsonNode?)o)]),
            ["cpuSecondsPerSecond"] = new JsonArray([.. r.CpuPerSecond.Select(c => (JsonNode?)Math.Round(c, 4))]),
            ["etcdCpuSecondsPerSecond"] = new JsonArray([.. r.EtcdCpuPerSecond.Select(c => (JsonNode?)Math.Round(c, 4))]),
            ["rssBytesPerSecond"] = new JsonArray([.. r.RssPerSecond.Select(b => (JsonNode?)b)]),
            ["anonBytesPerSecond"] = new JsonArray([.. r.AnonPerSecond.Select(b => (JsonNode?)b)]),
            ["errors"] = r.Errors,
            ["errorsByCode"] = new JsonObject([.. r.ErrorsByCode.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))]),
            ["failure"] = r.Failure,
        })]),
    };
}

[System.Text.Json.Serialization.JsonSerializable(typeof(MachineInfo))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class MachineJson : System.Text.Json.Serialization.JsonSerializerContext;
