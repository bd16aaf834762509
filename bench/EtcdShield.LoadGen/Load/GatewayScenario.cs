using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using EtcdShield.LoadGen.Infrastructure;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// etcd's HTTP/JSON gateway under the unary workloads' closed loop: on a fresh etcd per target, every key written once
/// through the gateway, then JSON puts and single-key ranges over HTTP/1.1 keep-alive connections with the bench
/// client certificate. Direct mTLS etcd serves the gateway itself on its client port; EtcdShield decodes the JSON and
/// sends it down the same relay path as gRPC. What it measures is what a gateway client pays for the proxy.
/// </summary>
internal static class GatewayScenario
{
    private const int SnippetChars = 200;

    private static readonly TimeSpan WarmUpSlice = TimeSpan.FromSeconds(0.5);

    public static async Task<List<GatewayRun>> RunAsync(
        TargetLauncher launcher, BenchPki pki, BenchOptions options, List<(int Round, TargetKind Target, TargetWarmUp WarmUp)> warmUps)
    {
        var runs = new List<GatewayRun>();
        for (var round = 1; round <= options.Rounds; round++)
        {
            foreach (var kind in BenchmarkSession.Rotate(options.Targets, round - 1))
            {
                runs.AddRange(await RunTargetAsync(launcher, pki, kind, round, options, warmUps).ConfigureAwait(false));
            }
        }

        return runs;
    }

    private static async Task<List<GatewayRun>> RunTargetAsync(
        TargetLauncher launcher, BenchPki pki, TargetKind kind, int round, BenchOptions options, List<(int Round, TargetKind Target, TargetWarmUp WarmUp)> warmUps)
    {
        var results = new List<GatewayRun>();
        var tag = $"r{round}-gateway-{kind.Id()}";
        try
        {
            using var target = await launcher.StartAsync(kind, tag).ConfigureAwait(false);
            using var client = GatewayClient.Open(target.Endpoint, options.Load.Clients, pki);
            var warmedUp = false;
            foreach (var size in options.Sizes)
            {
                var requests = new GatewayRequests(new KeySpace(size, options.Load.Keys));
                if (await ProbeAsync(client, kind, requests).ConfigureAwait(false) is { } notServed)
                {
                    Console.WriteLine($"  {kind.Id()}: no JSON gateway: {notServed}");
                    results.Add(new GatewayRun { Round = round, Target = kind, Operation = GatewayOperation.Put, ValueSize = size, NotServed = notServed });
                    return results;
                }

                await PrepopulateAsync(client, requests, options.Load.Clients).ConfigureAwait(false);
                if (!warmedUp)
                {
                    warmUps.Add((round, kind, await WarmUpAsync(target, client, requests, options).ConfigureAwait(false)));
                    warmedUp = true;
                }

                foreach (var operation in GatewayOperations.All)
                {
                    var run = await MeasureAsync(target, client, requests, operation, options.Load, round).ConfigureAwait(false);
                    Report(run);
                    results.Add(run);
                }
            }
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or OperationCanceledException or IOException or HttpRequestException)
        {
            Console.WriteLine($"bench: {tag} FAILED: {e.Message}");
            results.Add(new GatewayRun
            {
                Round = round,
                Target = kind,
                Operation = GatewayOperation.Put,
                ValueSize = options.Sizes[0],
                Failure = e.GetType().Name + ": " + e.Message.Split('\n')[0],
            });
        }

        return results;
    }

    /// <summary>
    /// The first request, before anything is timed. A target that refuses the gateway must fail the run loudly, not
    /// have its refusals counted as fast operations; only etcd grpc-proxy, which has no gateway, is "not served".
    /// </summary>
    /// <returns>Null when the gateway answered; why not, when the target has none.</returns>
    private static async Task<string?> ProbeAsync(GatewayClient client, TargetKind kind, GatewayRequests requests)
    {
        var operation = GatewayOperation.Put;
        var answer = await client.PostAsync(operation.Path(), requests.Body(operation, 0)).ConfigureAwait(false);
        if (requests.Check(operation, answer) is not { } error)
        {
            return null;
        }

        var said = $"{kind.Label()} answered POST {operation.Path()} with {(int)answer.Status} {answer.Status}{(answer.Status == HttpStatusCode.OK ? $" ({error})" : "")}: {Snippet(answer.Body)}";
        if (kind == TargetKind.GrpcProxy && answer.Status == HttpStatusCode.NotFound)
        {
            return said + "; etcd grpc-proxy serves only /metrics and /health over HTTP/1.1 on its listen address";
        }

        throw new InvalidOperationException(answer.Status == HttpStatusCode.NotImplemented && kind is TargetKind.ShieldPlain or TargetKind.ShieldEncrypted
            ? said + ". This EtcdShield build has no JSON gateway (src/EtcdShield/Gateway/GatewayEndpoint.cs): merge it and rebuild"
            : said);
    }

    private static async Task PrepopulateAsync(GatewayClient client, GatewayRequests requests, int clients)
    {
        var writers = Math.Max(1, Math.Min(clients, requests.Count));
        await Task.WhenAll(Enumerable.Range(0, writers).Select(async w =>
        {
            for (var k = w; k < requests.Count; k += writers)
            {
                var answer = await client.PostAsync(GatewayOperation.Put.Path(), requests.Body(GatewayOperation.Put, k)).ConfigureAwait(false);
                if (requests.Check(GatewayOperation.Put, answer) is { } error)
                {
                    throw new InvalidOperationException($"prepopulating through the gateway: {error}: {Snippet(answer.Body)}");
                }
            }
        })).ConfigureAwait(false);
    }

    /// <summary>
    /// As for the unary workloads (see BenchmarkSession's warm-up): unmeasured put and range slices until the measured
    /// process's CPU per operation settles, so a fresh .NET proxy's tier-0 JSON and relay code is not what is measured.
    /// </summary>
    private static async Task<TargetWarmUp> WarmUpAsync(RunningTarget target, GatewayClient client, GatewayRequests requests, BenchOptions options)
    {
        var slice = options.Load with { Warmup = TimeSpan.Zero, Duration = WarmUpSlice };
        var started = Stopwatch.GetTimestamp();
        double? previous = null;
        double? cpuPerOp = null;
        var settled = false;
        while (Stopwatch.GetElapsedTime(started) < options.TargetWarmup)
        {
            long operations = 0;
            double cpu = 0;
            foreach (var operation in GatewayOperations.All)
            {
                var run = await MeasureAsync(target, client, requests, operation, slice, round: 0).ConfigureAwait(false);
                if (run.Failure is not null)
                {
                    throw new InvalidOperationException("warm-up: " + run.Failure);
                }

                operations += run.Operations;
                cpu += run.Resources.ProxyCpuSeconds ?? run.Resources.EtcdCpuSeconds;
            }

            cpuPerOp = operations > 0 ? cpu / operations : null;
            if (previous is { } p && cpuPerOp is { } c && Math.Abs(c - p) <= 0.1 * p && Stopwatch.GetElapsedTime(started) >= options.MinTargetWarmup)
            {
                settled = true;
                break;
            }

            previous = cpuPerOp;
        }

        var warmUp = new TargetWarmUp(Stopwatch.GetElapsedTime(started).TotalSeconds, cpuPerOp * 1000, settled);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  {target.Kind.Id()}: gateway warm-up {warmUp.Seconds:0.0} s, {(settled ? "settled" : "NOT settled")} at {warmUp.CpuPer1000:0.0000} CPU s/1k ops"));
        return warmUp;
    }

    private static async Task<GatewayRun> MeasureAsync(
        RunningTarget target, GatewayClient client, GatewayRequests requests, GatewayOperation operation, LoadSettings settings, int round)
    {
        var run = new GatewayRun { Round = round, Target = target.Kind, Operation = operation, ValueSize = requests.ValueSize };
        var tallies = Enumerable.Range(0, settings.Clients).Select(_ => new Tally()).ToArray();

        ResourceWindow.ResetPeaks(target);
        var start = Stopwatch.GetTimestamp();
        var measureFrom = start + ClosedLoopRunner.Ticks(settings.Warmup);
        var end = measureFrom + ClosedLoopRunner.Ticks(settings.Duration);
        var sampler = ClosedLoopRunner.SampleAsync(target, measureFrom, end);
        await Task.WhenAll(tallies.Select((tally, c) => Task.Run(() => LoopAsync(client, requests, operation, c, tally, measureFrom, end)))).ConfigureAwait(false);
        run.Resources = await sampler.ConfigureAwait(false);

        run.Seconds = settings.Duration.TotalSeconds;
        foreach (var tally in tallies)
        {
            run.Operations += tally.Operations;
            run.Errors += tally.Errors;
            run.Latency.Add(tally.Latency);
            foreach (var (code, count) in tally.ErrorsByCode)
            {
                run.ErrorsByCode[code] = run.ErrorsByCode.GetValueOrDefault(code) + count;
            }
        }

        // A refusal is answered at once, so counting it as an error would still report a fast, mostly failing target:
        // a gateway that is not implemented voids the run, and so does one that answered nothing well.
        run.Failure = target.Failure
            ?? (run.ErrorsByCode.TryGetValue("HTTP 501", out var refused) ? $"{target.Kind.Label()} answered {refused} requests with 501 Not Implemented" : null)
            ?? (run.Operations == 0 && run.Errors > 0 ? $"every request failed ({string.Join(", ", run.ErrorsByCode.Select(e => $"{e.Key}: {e.Value}"))})" : null);
        return run;
    }

    private static async Task LoopAsync(
        GatewayClient client, GatewayRequests requests, GatewayOperation operation, int seed, Tally tally, long measureFrom, long end)
    {
        var random = new Random(seed);
        var path = operation.Path();
        while (true)
        {
            var started = Stopwatch.GetTimestamp();
            if (started >= end)
            {
                return;
            }

            string? error;
            try
            {
                var answer = await client.PostAsync(path, requests.Body(operation, random.Next(requests.Count))).ConfigureAwait(false);
                error = requests.Check(operation, answer);
            }
            catch (HttpRequestException e)
            {
                error = "connection " + e.HttpRequestError;
            }
            catch (TaskCanceledException)
            {
                error = "timeout";
            }

            if (error is not null)
            {
                tally.Failed(error);

                // A target refusing requests answers instantly; do not turn an error into a busy loop on two cores.
                await Task.Delay(10).ConfigureAwait(false);
            }
            else if (started >= measureFrom)
            {
                tally.Operations++;
                tally.Latency.Record(ClosedLoopRunner.Nanoseconds(Stopwatch.GetTimestamp() - started));
            }
        }
    }

    private static void Report(GatewayRun run)
    {
        var proxy = run.Resources.ProxyCpuSeconds is { } cpu && run.Operations > 0
            ? $", proxy {cpu / run.Operations * 1000:0.0000} CPU s/1k, peak {run.Resources.ProxyPeakBytes / 1048576.0:0} MiB"
            : "";
        var etcd = run.Operations > 0 ? $", etcd {run.Resources.EtcdCpuSeconds / run.Operations * 1000:0.0000} CPU s/1k" : "";
        var errors = run.Errors > 0 ? $", {run.Errors} errors ({string.Join(", ", run.ErrorsByCode.Select(e => $"{e.Key}: {e.Value}"))})" : "";
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  r{run.Round} {run.Target.Id(),-16} gateway {run.Operation.Id(),-5} {Workload.SizeLabel(run.ValueSize),-6} {run.OperationsPerSecond,9:0} ops/s  p50 {run.Latency.ValueAtPercentile(50) / 1e6,7:0.000} ms  p99 {run.Latency.ValueAtPercentile(99) / 1e6,7:0.000} ms{etcd}{proxy}{errors}{(run.Failure is null ? "" : " FAILED: " + run.Failure)}"));
    }

    /// <summary>The start of an answer's body, on one line, for a failure message (a refusal or an error body, no values).</summary>
    private static string Snippet(byte[] body)
    {
        var text = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, SnippetChars)).ReplaceLineEndings(" ").Trim();
        return text.Length == 0 ? "(empty body)" : text;
    }

    /// <summary>One client's counts, merged after the run so the hot loop shares nothing.</summary>
    private sealed class Tally
    {
        public long Operations { get; set; }

        public long Errors { get; private set; }

        public Dictionary<string, long> ErrorsByCode { get; } = new(StringComparer.Ordinal);

        public LatencyHistogram Latency { get; } = new();

        public void Failed(string code)
        {
            Errors++;
            ErrorsByCode[code] = ErrorsByCode.GetValueOrDefault(code) + 1;
        }
    }
}
