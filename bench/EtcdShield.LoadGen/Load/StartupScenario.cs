using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using EtcdShield.LoadGen.Infrastructure;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// What a rolling restart of sidecars costs: each target is started cold on a fresh etcd that already holds the
/// key space, and measured from its exec. A client polls a linearizable Range (a new connection per attempt, as a
/// client reconnecting to a restarted member does) until the first answer; then, in a first launch, the target sits
/// idle and its resident set is read; in a second launch the closed-loop load starts at the first answer and runs
/// second by second into the steady state, so the first 10 s are compared with the same process's steady state
/// under the same load generator and concurrency. EtcdShield runs as each build given (the framework-dependent JIT
/// build and the published Native AOT one), grpc-proxy as it ships, and etcd itself as the reference row.
/// </summary>
internal static class StartupScenario
{
    private static readonly TimeSpan PollLimit = TimeSpan.FromSeconds(60);

    public static async Task<List<StartupRun>> RunAsync(
        TargetLauncher launcher, BenchPki pki, BenchOptions options, IReadOnlyList<ShieldBinary> shields)
    {
        var settings = options.Startup;
        var variants = Variants(options.Targets, shields);
        var runs = new List<StartupRun>();
        for (var round = 1; round <= options.Rounds; round++)
        {
            foreach (var variant in variants.Skip((round - 1) % variants.Count).Concat(variants.Take((round - 1) % variants.Count)))
            {
                var run = new StartupRun
                {
                    Round = round,
                    Target = variant.Kind,
                    Variant = variant.Id,
                    Label = variant.Label,
                    HowRun = variant.HowRun,
                    ValueSize = options.Sizes[0],
                    SteadySeconds = settings.SteadySeconds,
                };
                try
                {
                    await RunOneAsync(launcher, pki, options, variant, run).ConfigureAwait(false);
                }
                catch (Exception e) when (e is InvalidOperationException or RpcException or TimeoutException or OperationCanceledException or IOException or HttpRequestException)
                {
                    run.Failure = e.GetType().Name + ": " + e.Message.Split('\n')[0];
                }

                Report(run);
                runs.Add(run);
            }
        }

        return runs;
    }

    private sealed record Variant(string Id, string Label, string HowRun, TargetKind Kind, ShieldBinary? Shield);

    private static List<Variant> Variants(IReadOnlyList<TargetKind> targets, IReadOnlyList<ShieldBinary> shields)
    {
        var variants = new List<Variant>();
        foreach (var kind in targets)
        {
            switch (kind)
            {
                case TargetKind.Etcd or TargetKind.EtcdMtls when !variants.Any(v => v.Id == "etcd"):
                    variants.Add(new Variant("etcd", "etcd itself (mTLS)", "/usr/bin/etcd", TargetKind.EtcdMtls, null));
                    break;
                case TargetKind.GrpcProxy:
                    variants.Add(new Variant("grpc-proxy", kind.Label(), "/usr/bin/etcd grpc-proxy start", kind, null));
                    break;
                case TargetKind.ShieldPlain or TargetKind.ShieldEncrypted:
                    foreach (var shield in shields)
                    {
                        variants.Add(new Variant(
                            $"{kind.Id()}-{shield.Name}",
                            $"{kind.Label()}, {shield.Name switch { "jit" => "dotnet EtcdShield.dll (JIT)", "published" => "published (Native AOT)", var other => other }}",
                            shield.Description,
                            kind,
                            shield));
                    }

                    break;
            }
        }

        return variants;
    }

    private static async Task RunOneAsync(TargetLauncher launcher, BenchPki pki, BenchOptions options, Variant variant, StartupRun run)
    {
        var keys = new KeySpace(options.Sizes[0], options.Load.Keys);
        var tag = $"r{run.Round}-startup-{variant.Id}";

        // Stops every poll when this target's run ends, so a launch that failed leaves nothing dialing into the next.
        using var stopPolls = new CancellationTokenSource();
        try
        {
            await RunLaunchesAsync(launcher, pki, options, variant, run, keys, tag, stopPolls.Token).ConfigureAwait(false);
        }
        finally
        {
            await stopPolls.CancelAsync().ConfigureAwait(false);
        }
    }

    private static async Task RunLaunchesAsync(
        TargetLauncher launcher, BenchPki pki, BenchOptions options, Variant variant, StartupRun run, KeySpace keys, string tag, CancellationToken stop)
    {
        var settings = options.Startup;
        var probeKey = keys[0];
        Task<long>? etcdAnswer = null;
        var isEtcd = variant.Kind == TargetKind.EtcdMtls;
        using var etcd = await launcher.StartSharedEtcdAsync(
            tag, (process, urls) => etcdAnswer = PollAsync(isEtcd ? urls[1] : urls[0], pki, probeKey, stop)).ConfigureAwait(false);
        run.EtcdFirstAnswerMs = Milliseconds(etcd.Process.StartedAt, await etcdAnswer!.ConfigureAwait(false));

        if (isEtcd)
        {
            // etcd is the process measured: its idle set straight after start, then the key space, then the load.
            run.FirstAnswerMs.Add(run.EtcdFirstAnswerMs.Value);
            await Task.Delay(settings.Idle, stop).ConfigureAwait(false);
            run.IdleRssBytes = ProcessSampler.ResidentBytes(etcd.Process.Pid);
            run.IdlePeakBytes = ProcessSampler.PeakResidentBytes(etcd.Process.Pid);
            run.IdleAnonBytes = ProcessSampler.AnonymousBytes(etcd.Process.Pid);
            await PrepopulateAsync(etcd.Plaintext, pki, keys, options).ConfigureAwait(false);
            using var direct = await launcher.StartOnAsync(TargetKind.EtcdMtls, tag, etcd).ConfigureAwait(false);
            await LoadAsync(direct, etcd.Process.Pid, pki, keys, options, run, Stopwatch.GetTimestamp()).ConfigureAwait(false);
            return;
        }

        // The key space is written before the measured starts, so the first request already reads a value. Through
        // the encrypting proxy it must go through a proxy (etcd must hold envelopes): a seed instance, stopped after.
        if (variant.Kind == TargetKind.ShieldEncrypted)
        {
            using var seed = await launcher.StartOnAsync(variant.Kind, tag + "-seed", etcd, variant.Shield!, launched: null).ConfigureAwait(false);
            await PrepopulateAsync(seed.Endpoint, pki, keys, options).ConfigureAwait(false);
        }
        else
        {
            await PrepopulateAsync(etcd.Plaintext, pki, keys, options).ConfigureAwait(false);
        }

        // Launch 1: idle. Nothing but the one poll reaches it.
        {
            Task<long>? answered = null;
            ServerProcess? process = null;
            using var idle = await launcher.StartOnAsync(variant.Kind, tag + "-idle", etcd, variant.Shield!, (p, endpoint) =>
            {
                process = p;
                answered = PollAsync(endpoint, pki, probeKey, stop);
            }).ConfigureAwait(false);
            run.FirstAnswerMs.Add(Milliseconds(process!.StartedAt, await answered!.ConfigureAwait(false)));
            await Task.Delay(settings.Idle, stop).ConfigureAwait(false);
            run.IdleRssBytes = ProcessSampler.ResidentBytes(process.Pid);
            run.IdlePeakBytes = ProcessSampler.PeakResidentBytes(process.Pid);
            run.IdleAnonBytes = ProcessSampler.AnonymousBytes(process.Pid);
        }

        // Launch 2: the load starts at the first answer.
        {
            Task<long>? answered = null;
            ServerProcess? process = null;
            using var loaded = await launcher.StartOnAsync(variant.Kind, tag + "-load", etcd, variant.Shield!, (p, endpoint) =>
            {
                process = p;
                answered = PollAsync(endpoint, pki, probeKey, stop);
            }).ConfigureAwait(false);
            run.ReadyLineMs = Milliseconds(process!.StartedAt, Stopwatch.GetTimestamp());
            var first = await answered!.ConfigureAwait(false);
            run.FirstAnswerMs.Add(Milliseconds(process.StartedAt, first));
            await LoadAsync(loaded, process.Pid, pki, keys, options, run, first).ConfigureAwait(false);
        }

        // Launch 3 (EtcdShield only; grpc-proxy serves no gateway): a JSON request is the first request.
        if (variant.Shield is not null)
        {
            Task<long>? answered = null;
            ServerProcess? process = null;
            var body = Encoding.UTF8.GetBytes($"{{\"key\":\"{Convert.ToBase64String(probeKey.ToByteArray())}\"}}");
            using var gateway = await launcher.StartOnAsync(variant.Kind, tag + "-gateway", etcd, variant.Shield, (p, endpoint) =>
            {
                process = p;
                answered = PollGatewayAsync(endpoint, pki, body, stop);
            }).ConfigureAwait(false);
            run.GatewayFirstAnswerMs = Milliseconds(process!.StartedAt, await answered!.ConfigureAwait(false));
        }
    }

    /// <summary>
    /// Closed loop from <paramref name="from"/> (the first answer) for the load time, counting answers by the second
    /// they completed in and sampling the process's CPU and resident set at every second boundary.
    /// </summary>
    private static async Task LoadAsync(RunningTarget target, int pid, BenchPki pki, KeySpace keys, BenchOptions options, StartupRun run, long from)
    {
        var settings = options.Startup;
        var seconds = settings.LoadSeconds;
        var clients = options.Load.Clients;
        using var connections = EtcdConnections.Open(target.Endpoint, options.Load.Connections, pki);
        var operations = Enumerable.Range(0, clients)
            .Select(c => ClientOperation.Create(settings.Workload, connections.Kv(c), keys, c, clients))
            .ToArray();
        var counts = new long[clients][];
        var errors = new Dictionary<string, long>[clients];
        var end = from + ClosedLoopRunner.Ticks(TimeSpan.FromSeconds(seconds));
        var cpu = new double[seconds + 1];
        var etcdCpu = new double[seconds + 1];
        var rss = new long[seconds];
        var anon = new long[seconds];
        cpu[0] = ProcessSampler.CpuSeconds(pid) ?? 0;
        etcdCpu[0] = ProcessSampler.CpuSeconds(target.EtcdPid) ?? 0;
        var sampler = Task.Run(async () =>
        {
            for (var s = 1; s <= seconds; s++)
            {
                await ClosedLoopRunner.DelayUntilAsync(from + ClosedLoopRunner.Ticks(TimeSpan.FromSeconds(s))).ConfigureAwait(false);
                cpu[s] = ProcessSampler.CpuSeconds(pid) ?? cpu[s - 1];
                etcdCpu[s] = ProcessSampler.CpuSeconds(target.EtcdPid) ?? etcdCpu[s - 1];
                rss[s - 1] = ProcessSampler.ResidentBytes(pid) ?? 0;
                anon[s - 1] = ProcessSampler.AnonymousBytes(pid) ?? 0;
            }
        });
        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            var mine = counts[c] = new long[seconds];
            var failed = errors[c] = new Dictionary<string, long>(StringComparer.Ordinal);
            while (Stopwatch.GetTimestamp() < end)
            {
                try
                {
                    await operations[c].ExecuteAsync(new CallOptions(deadline: DateTime.UtcNow + LoadSettings.CallDeadline)).ConfigureAwait(false);
                    var second = (int)((Stopwatch.GetTimestamp() - from) / Stopwatch.Frequency);
                    if (second < seconds)
                    {
                        mine[second]++;
                    }
                }
                catch (RpcException e)
                {
                    failed[e.StatusCode.ToString()] = failed.GetValueOrDefault(e.StatusCode.ToString()) + 1;
                    await Task.Delay(10).ConfigureAwait(false);
                }
            }
        }))).ConfigureAwait(false);
        await sampler.ConfigureAwait(false);

        run.OpsPerSecond = [.. Enumerable.Range(0, seconds).Select(s => counts.Sum(c => c[s]))];
        run.CpuPerSecond = [.. Enumerable.Range(0, seconds).Select(s => cpu[s + 1] - cpu[s])];
        run.EtcdCpuPerSecond = [.. Enumerable.Range(0, seconds).Select(s => etcdCpu[s + 1] - etcdCpu[s])];
        run.RssPerSecond = rss;
        run.AnonPerSecond = anon;
        run.LoadPeakBytes = ProcessSampler.PeakResidentBytes(pid);
        foreach (var (code, count) in errors.SelectMany(e => e))
        {
            run.ErrorsByCode[code] = run.ErrorsByCode.GetValueOrDefault(code) + count;
            run.Errors += count;
        }

        run.Failure ??= target.Failure;
    }

    private static async Task PrepopulateAsync(Uri endpoint, BenchPki pki, KeySpace keys, BenchOptions options)
    {
        using var connections = EtcdConnections.Open(endpoint, options.Load.Connections, pki);
        await Prepopulation.RunAsync(connections, keys, options.Load.Clients).ConfigureAwait(false);
    }

    /// <summary>
    /// A linearizable Range on a new connection every 5 ms until one answers: a channel that failed to connect backs
    /// off, and a client reconnecting to a restarted member opens a new one. Returns the answer's timestamp.
    /// </summary>
    private static Task<long> PollAsync(Uri endpoint, BenchPki pki, ByteString key, CancellationToken stop) => Task.Run(async () =>
    {
        var limit = Stopwatch.GetTimestamp() + ClosedLoopRunner.Ticks(PollLimit);
        while (true)
        {
            using (var connection = EtcdConnections.Open(endpoint, 1, pki))
            {
                try
                {
                    await connection.Kv(0).RangeAsync(new RangeRequest { Key = key }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: stop).ResponseAsync.ConfigureAwait(false);
                    return Stopwatch.GetTimestamp();
                }
                catch (RpcException) when (Stopwatch.GetTimestamp() < limit)
                {
                    // Not listening yet, or not serving yet: try again.
                }
            }

            await Task.Delay(5, stop).ConfigureAwait(false);
        }
    }, stop);

    private static Task<long> PollGatewayAsync(Uri endpoint, BenchPki pki, byte[] body, CancellationToken stop) => Task.Run(async () =>
    {
        var limit = Stopwatch.GetTimestamp() + ClosedLoopRunner.Ticks(PollLimit);
        while (true)
        {
            using (var client = GatewayClient.Open(endpoint, 1, pki))
            {
                try
                {
                    var answer = await client.PostAsync("/v3/kv/range", body).ConfigureAwait(false);
                    if (answer.Status == HttpStatusCode.OK)
                    {
                        return Stopwatch.GetTimestamp();
                    }

                    if (Stopwatch.GetTimestamp() >= limit)
                    {
                        throw new InvalidOperationException($"the gateway answered {(int)answer.Status} to its first requests");
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException && Stopwatch.GetTimestamp() < limit)
                {
                    // Not listening yet.
                }
            }

            await Task.Delay(5, stop).ConfigureAwait(false);
        }
    }, stop);

    private static double Milliseconds(long from, long to) => (to - from) * 1000.0 / Stopwatch.Frequency;

    private static void Report(StartupRun run)
    {
        if (run.Failure is not null && run.OpsPerSecond.Length == 0)
        {
            Console.WriteLine($"  r{run.Round} {run.Variant,-28} FAILED: {run.Failure}");
            return;
        }

        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  r{run.Round} {run.Variant,-28} first answer {string.Join(" / ", run.FirstAnswerMs.Select(m => m.ToString("0", CultureInfo.InvariantCulture)))} ms, first 10 s {run.ColdThroughputRatio:0.00}× steady ({run.SteadyOpsPerSecond:0} ops/s), CPU/op {run.ColdCpuRatio:0.00}× steady, RSS idle {run.IdleRssBytes / 1048576.0:0} MiB (anon {run.IdleAnonBytes / 1048576.0:0}), load peak {run.LoadPeakBytes / 1048576.0:0} / steady {run.SteadyRssBytes / 1048576.0:0} MiB (anon {run.SteadyAnonBytes / 1048576.0:0}){(run.Errors > 0 ? $", {run.Errors} errors" : "")}{(run.Failure is null ? "" : " FAILED: " + run.Failure)}"));
    }
}
