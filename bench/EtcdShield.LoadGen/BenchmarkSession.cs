using System.Globalization;
using EtcdShield.LoadGen.Infrastructure;
using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Report;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen;

/// <summary>
/// One benchmark run from start to report: PKI, KEK, then round after round every target started fresh, loaded
/// with every workload, and stopped, in an order rotated each round so that slow drifts and a neighbour's bursts on
/// a shared machine land on all targets alike. Whatever fails, every process started is killed.
/// </summary>
internal static class BenchmarkSession
{
    public static async Task<int> RunAsync(BenchOptions options)
    {
        var started = DateTimeOffset.UtcNow;
        var repository = FindRepository();
        var output = Path.GetFullPath(options.OutputDirectory
            ?? Path.Combine(repository, "bench", "out", started.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)));
        var logs = Path.Combine(output, "logs");
        Directory.CreateDirectory(logs);
        ChildProcesses.Track(Path.Combine(output, "pids"));

        var shieldDll = options.ShieldDll ?? Path.Combine(repository, "src", "EtcdShield", "bin", "Release", "net10.0", "EtcdShield.dll");
        if (!File.Exists(shieldDll))
        {
            await Console.Error.WriteLineAsync($"loadgen: {shieldDll} not found; build it with: dotnet build src/EtcdShield -c Release").ConfigureAwait(false);
            return 2;
        }

        // tmpfs keeps the shared disk's fsync latency (noisy, and not the proxy's doing) out of every target alike.
        var dataRoot = Path.Combine(
            options.DataRoot ?? (Directory.Exists("/dev/shm") ? "/dev/shm" : output),
            "etcdshield-bench-" + started.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
        ChildProcesses.AtExit(() => TryDelete(dataRoot));
        var runs = new List<WorkloadRun>();
        SnapshotFill? fill = null;
        string? snapshotFailure = null;
        var snapshots = new List<SnapshotRun>();
        var keepAlives = new List<KeepAliveRun>();
        var gatewayRuns = new List<GatewayRun>();
        var startupRuns = new List<StartupRun>();
        var shieldBuilds = new List<string>();
        var gatewayWarmUps = new List<(int Round, TargetKind Target, TargetWarmUp WarmUp)>();
        var warmUps = new List<(int Round, BenchTarget Target, TargetWarmUp WarmUp)>();
        var machine = MachineInfo.Collect();
        Console.WriteLine($"bench: {options.Mode} run → {output}");
        Console.WriteLine($"bench: {machine.Cores} cores, {machine.CpuModel}, load average {machine.LoadAverageAtStart}");

        KeyProviderSetup? keys = null;
        try
        {
            Directory.CreateDirectory(dataRoot);
            using var pki = BenchPki.Create(Path.Combine(dataRoot, "pki"));
            var shield = new ShieldBinary(shieldDll, options.ShieldEnvironment, arguments: options.ShieldArguments);
            if (options.Targets.Contains(TargetKind.ShieldEncrypted))
            {
                keys = await KeyProviderSetup.ChooseAsync(shield, pki, Path.Combine(dataRoot, "kek"), logs).ConfigureAwait(false);
                Console.WriteLine($"bench: encrypting target uses {keys.Provider}: {keys.Detail}");
            }

            var launcher = new TargetLauncher(pki, shield, keys!, dataRoot, logs, options.ShieldVariants);
            foreach (var variant in options.ShieldVariants)
            {
                Console.WriteLine($"bench: variant {variant.Name}: {variant.Description}");
            }

            for (var round = 1; options.Scenarios.Contains(Scenario.Unary) && round <= options.Rounds; round++)
            {
                foreach (var target in Rotate(options.UnaryTargets, round - 1))
                {
                    runs.AddRange(await RunTargetAsync(launcher, pki, target, round, options, warmUps).ConfigureAwait(false));
                }
            }

            if (options.Scenarios.Contains(Scenario.Snapshot))
            {
                Console.WriteLine($"bench: snapshot of a {options.Snapshot.DatabaseBytes >> 20} MiB database, {1 + options.Snapshot.WarmSnapshots} per target per round");
                try
                {
                    (fill, var taken) = await SnapshotScenario.RunAsync(launcher, pki, options.Targets, options.Rounds, options.Snapshot, dataRoot).ConfigureAwait(false);
                    snapshots.AddRange(taken);
                }
                catch (Exception e) when (e is InvalidOperationException or Grpc.Core.RpcException or TimeoutException or OperationCanceledException or IOException or HttpRequestException)
                {
                    snapshotFailure = e.GetType().Name + ": " + e.Message.Split('\n')[0];
                    Console.WriteLine($"bench: snapshot FAILED: {snapshotFailure}");
                }
            }

            if (options.Scenarios.Contains(Scenario.KeepAlive))
            {
                var k = options.KeepAlive;
                Console.WriteLine($"bench: keep-alive of {k.Leases} leases, {k.MessagesPerSecond}/s over {string.Join(" and ", k.StreamCounts)} stream(s)");
                keepAlives.AddRange(await KeepAliveScenario.RunAsync(launcher, pki, options.Targets, options.Rounds, k, options.Load.Connections).ConfigureAwait(false));
            }

            if (options.Scenarios.Contains(Scenario.Gateway))
            {
                Console.WriteLine($"bench: HTTP/JSON gateway put and range, {options.Load.Clients} clients over HTTP/1.1 keep-alive connections");
                gatewayRuns.AddRange(await GatewayScenario.RunAsync(launcher, pki, options, gatewayWarmUps).ConfigureAwait(false));
            }

            if (options.Scenarios.Contains(Scenario.Startup))
            {
                List<ShieldBinary> shields = [shield];
                foreach (var build in options.ShieldBuilds)
                {
                    if (!File.Exists(build.Path))
                    {
                        throw new FileNotFoundException($"{build.Path} not found; publish it with: bash deploy/publish.sh", build.Path);
                    }

                    var environment = new Dictionary<string, string>(options.ShieldEnvironment);
                    foreach (var (key, value) in build.Environment)
                    {
                        environment[key] = value;
                    }

                    shields.Add(new ShieldBinary(Path.GetFullPath(build.Path), environment, build.Name, options.ShieldArguments));
                }

                shieldBuilds.AddRange(shields.Select(s => s.Description));
                Console.WriteLine($"bench: start-up and memory, {options.Startup.Load.TotalSeconds:0} s of {options.Startup.Workload.Id()} from the first answer, {options.Load.Clients} clients over {options.Load.Connections} connections");
                startupRuns.AddRange(await StartupScenario.RunAsync(launcher, pki, options, shields).ConfigureAwait(false));
            }
        }
        finally
        {
            ChildProcesses.KillAll();
            TryDelete(dataRoot);
        }

        var summaries = Summary.From(runs);
        var snapshotSummaries = SnapshotSummary.From(snapshots, options.Targets);
        var gatewaySummaries = GatewaySummary.From(gatewayRuns, options.Targets);
        var micro = MicrobenchResults.Load(options.MicrobenchJson);
        var report = new BenchReport
        {
            Command = options.Command ?? "EtcdShield.LoadGen " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
            Mode = options.Mode,
            Started = started,
            Finished = DateTimeOffset.UtcNow,
            Machine = machine,
            LoadAverageAtEnd = MachineInfo.LoadAverage(),
            Settings = options.Load,
            Rounds = options.Rounds,
            TargetWarmup = options.TargetWarmup,
            MinTargetWarmup = options.MinTargetWarmup,
            WarmUps = warmUps,
            Targets = options.Targets,
            UnaryTargets = options.UnaryTargets,
            ShieldVariants = options.ShieldVariants,
            ShieldArguments = options.ShieldArguments,
            KeyProvider = keys?.Provider ?? "n/a",
            KeyProviderDetail = keys?.Detail ?? "the encrypting target was not run",
            DataRoot = options.DataRoot ?? (Directory.Exists("/dev/shm") ? "/dev/shm (tmpfs)" : "the output directory"),
            Runs = runs,
            Summaries = summaries,
            Goals = [
                .. options.Scenarios.Contains(Scenario.Unary) ? GoalChecks.Evaluate(summaries, micro, options.Load.Watchers) : [],
                .. options.Scenarios.Contains(Scenario.Unary) ? GoalChecks.WatchAtScale(summaries, options.Load.Watchers, options.ShieldVariants) : [],
                .. options.Scenarios.Contains(Scenario.Snapshot) ? GoalChecks.Snapshot(snapshotSummaries) : [],
                .. options.Scenarios.Contains(Scenario.Gateway) ? GoalChecks.Gateway(gatewaySummaries) : [],
                .. options.Scenarios.Contains(Scenario.Startup) ? StartupMarkdown.Goals(startupRuns) : [],
            ],
            Microbench = micro,
            Scenarios = options.Scenarios,
            SnapshotSettings = options.Snapshot,
            KeepAliveSettings = options.KeepAlive,
            SnapshotFill = fill,
            SnapshotFailure = snapshotFailure,
            Snapshots = snapshots,
            SnapshotSummaries = snapshotSummaries,
            KeepAlives = keepAlives,
            KeepAliveSummaries = KeepAliveSummary.From(keepAlives, options.Targets),
            GatewayRuns = gatewayRuns,
            GatewaySummaries = gatewaySummaries,
            GatewayWarmUps = gatewayWarmUps,
            StartupSettings = options.Startup,
            StartupRuns = startupRuns,
            ShieldBuilds = shieldBuilds,
            ShieldEnvironment = options.ShieldEnvironment,
        };
        await File.WriteAllTextAsync(Path.Combine(output, "results.md"), MarkdownReport.Write(report)).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(output, "results.json"), JsonReport.Write(report)).ConfigureAwait(false);
        if (runs.Count > 0)
        {
            // The chart is of the unary workloads' ratios; a streaming-only run has its numbers in the tables.
            await File.WriteAllTextAsync(Path.Combine(output, "chart.svg"), SvgChart.Write(report)).ConfigureAwait(false);
        }

        Console.WriteLine($"bench: wrote {Path.Combine(output, "results.md")}, results.json{(runs.Count > 0 ? ", chart.svg" : "")}");
        foreach (var goal in report.Goals)
        {
            Console.WriteLine($"goal: {(goal.Met is null ? "n/a " : goal.Met.Value ? "met " : "MISS")} {goal.Goal}: {goal.Measured}");
        }

        // A target without a gateway (grpc-proxy) is reported, neither measured nor failed.
        var measured = runs.Count + snapshots.Count + keepAlives.Count + gatewayRuns.Count(r => r.NotServed is null) + startupRuns.Count;
        var failed = runs.Count(r => r.Failure is not null) + snapshots.Count(r => r.Failure is not null) + keepAlives.Count(r => r.Failure is not null)
            + gatewayRuns.Count(r => r.Failure is not null)
            + startupRuns.Count(r => r.Failure is not null)
            + (snapshotFailure is null ? 0 : 1);
        return measured == 0 || failed > 0 ? 1 : 0;
    }

    private static async Task<List<WorkloadRun>> RunTargetAsync(
        TargetLauncher launcher, BenchPki pki, BenchTarget row, int round, BenchOptions options, List<(int Round, BenchTarget Target, TargetWarmUp WarmUp)> warmUps)
    {
        var results = new List<WorkloadRun>();
        var tag = $"r{round}-{row.Id}";
        try
        {
            using var target = await launcher.StartAsync(row, tag).ConfigureAwait(false);
            using var connections = EtcdConnections.Open(target.Endpoint, options.Load.Connections, pki);
            using (var connect = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            {
                await connections.ConnectAsync(connect.Token).ConfigureAwait(false);
            }

            var warmedUp = false;
            var closedLoop = options.Workloads.Where(w => !w.IsWatch()).ToList();
            foreach (var size in closedLoop.Count == 0 ? options.Sizes.Take(1) : options.Sizes)
            {
                // Even a watch-only run warms the target up on the closed-loop paths first (a watch's put is one).
                var keys = new KeySpace(size, options.Load.Keys);
                await Prepopulation.RunAsync(connections, keys, options.Load.Clients).ConfigureAwait(false);
                if (!warmedUp)
                {
                    var warmUp = await WarmUpAsync(target, connections, keys, options).ConfigureAwait(false);
                    warmUps.Add((round, row, warmUp));
                    warmedUp = true;
                }

                foreach (var workload in closedLoop)
                {
                    var run = await ClosedLoopRunner.RunAsync(target, connections, keys, workload, options.Load, round).ConfigureAwait(false);
                    Report(run);
                    results.Add(run);
                }
            }

            foreach (var watch in options.Workloads.Where(w => w.IsWatch()))
            {
                // Watch runs once per target, at 1 KiB when that size is measured: its goal is stated for it.
                var size = options.Sizes.Contains(GoalChecks.ReferenceSize) ? GoalChecks.ReferenceSize : options.Sizes[0];
                var run = await WatchFanOut.RunAsync(target, connections, watch, size, options.Load, round).ConfigureAwait(false);
                Report(run);
                results.Add(run);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or Grpc.Core.RpcException or TimeoutException or OperationCanceledException or IOException or HttpRequestException)
        {
            // One target failing (it did not start, or died) must not take the others' results with it.
            Console.WriteLine($"bench: {tag} FAILED: {e.Message}");
            results.Add(new WorkloadRun
            {
                Round = round,
                Target = row,
                Workload = new Workload(options.Workloads[0], options.Sizes[0]),
                Failure = e.GetType().Name + ": " + e.Message.Split('\n')[0],
            });
        }

        return results;
    }

    /// <summary>
    /// A fresh .NET proxy runs tier-0 code and then recompiles its hot paths (with PGO) in the background; on a busy
    /// two-core machine that takes tens of seconds of load, while etcd and grpc-proxy are compiled ahead of time.
    /// So every closed-loop path gets unmeasured load in slices until the measured process's CPU per operation stops
    /// falling (two slices within 10 %, after a minimum), up to the configured maximum: the workloads then measure the steady state a
    /// long-running proxy is in, whatever the target.
    /// </summary>
    private static async Task<TargetWarmUp> WarmUpAsync(RunningTarget target, EtcdConnections connections, KeySpace keys, BenchOptions options)
    {
        // The hostile rows are left out, so the warm-up (and so every other row) is what it was before they existed;
        // each of them still has its own warm-up before its measured window.
        var kinds = Enum.GetValues<WorkloadKind>().Where(k => !k.IsWatch() && !k.IsHostile()).ToList();
        var slice = options.Load with { Warmup = TimeSpan.Zero, Duration = TimeSpan.FromSeconds(0.5) };
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        double? previous = null;
        double? cpuPerOp = null;
        var settled = false;
        while (System.Diagnostics.Stopwatch.GetElapsedTime(started) < options.TargetWarmup)
        {
            long operations = 0;
            double cpu = 0;
            foreach (var kind in kinds)
            {
                var run = await ClosedLoopRunner.RunAsync(target, connections, keys, kind, slice, round: 0).ConfigureAwait(false);
                operations += run.Operations;
                cpu += run.Resources.ProxyCpuSeconds ?? run.Resources.EtcdCpuSeconds;
            }

            cpuPerOp = operations > 0 ? cpu / operations : null;
            if (previous is { } p && cpuPerOp is { } c && Math.Abs(c - p) <= 0.1 * p
                && System.Diagnostics.Stopwatch.GetElapsedTime(started) >= options.MinTargetWarmup)
            {
                settled = true;
                break;
            }

            previous = cpuPerOp;
        }

        var warmUp = new TargetWarmUp(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds, cpuPerOp * 1000, settled);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  {target.Target.Id}: warm-up {warmUp.Seconds:0.0} s, {(settled ? "settled" : "NOT settled")} at {warmUp.CpuPer1000:0.0000} CPU s/1k ops"));
        return warmUp;
    }

    private static void Report(WorkloadRun run)
    {
        var proxy = run.Resources.ProxyCpuSeconds is { } cpu && run.Operations > 0
            ? $", proxy {cpu / run.Operations * 1000:0.0000} CPU s/1k, peak {run.Resources.ProxyPeakBytes / 1048576.0:0} MiB"
            : "";
        var errors = run.Errors > 0 ? $", {run.Errors} errors ({string.Join(", ", run.ErrorsByCode.Select(e => $"{e.Key}: {e.Value}"))})" : "";
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  r{run.Round} {run.Target.Id,-16} {run.Workload.Id,-16} {run.OperationsPerSecond,9:0} ops/s  p50 {run.Latency.ValueAtPercentile(50) / 1e6,7:0.000} ms  p99 {run.Latency.ValueAtPercentile(99) / 1e6,7:0.000} ms{proxy}{errors}{(run.Failure is null ? "" : " FAILED: " + run.Failure)}"));
    }

    /// <summary>Round r starts r places further along: A B C, B C A, C A B.</summary>
    internal static IEnumerable<T> Rotate<T>(IReadOnlyList<T> targets, int by) =>
        targets.Skip(by % targets.Count).Concat(targets.Take(by % targets.Count));

    private static string FindRepository()
    {
        for (var directory = new DirectoryInfo(Environment.CurrentDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "EtcdShield.sln")))
            {
                return directory.FullName;
            }
        }

        return Environment.CurrentDirectory;
    }

    private static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>How long a target needed before its CPU per operation settled, and where it settled.</summary>
internal sealed record TargetWarmUp(double Seconds, double? CpuPer1000, bool Settled);
