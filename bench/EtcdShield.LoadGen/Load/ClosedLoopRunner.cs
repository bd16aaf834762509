using System.Diagnostics;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;
using Grpc.Core;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// A closed loop: each client sends its next request as soon as the previous one answered, for warm-up plus the
/// measured duration, then stops. Only operations started inside the measured window count, so warm-up (JIT, TLS
/// session caches, etcd's first compaction of its write buffer) never reaches the numbers.
/// </summary>
internal static class ClosedLoopRunner
{
    public static async Task<WorkloadRun> RunAsync(
        RunningTarget target,
        EtcdConnections connections,
        KeySpace keys,
        WorkloadKind kind,
        LoadSettings settings,
        int round)
    {
        var run = new WorkloadRun { Round = round, Target = target.Target, Workload = new Workload(kind, keys.ValueSize) };
        var operations = Enumerable.Range(0, settings.Clients)
            .Select(c => ClientOperation.Create(kind, connections.Kv(c), keys, c, settings.Clients))
            .ToArray();
        var clients = operations.Select(_ => new ClientTally()).ToArray();

        ResourceWindow.ResetPeaks(target);
        var start = Stopwatch.GetTimestamp();
        var measureFrom = start + Ticks(settings.Warmup);
        var end = measureFrom + Ticks(settings.Duration);
        var sampler = SampleAsync(target, measureFrom, end);
        await Task.WhenAll(clients.Select((tally, c) => Task.Run(() => LoopAsync(operations[c], tally, measureFrom, end)))).ConfigureAwait(false);
        run.Resources = await sampler.ConfigureAwait(false);

        run.Seconds = settings.Duration.TotalSeconds;
        foreach (var tally in clients)
        {
            run.Operations += tally.Operations;
            run.Errors += tally.Errors;
            run.Latency.Add(tally.Latency);
            foreach (var (code, count) in tally.ErrorsByCode)
            {
                run.ErrorsByCode[code] = run.ErrorsByCode.GetValueOrDefault(code) + count;
            }
        }

        if (kind == WorkloadKind.TxnCas)
        {
            run.TxnSucceeded = operations.Cast<CompareAndSwapOperation>().Sum(o => o.Succeeded);
            run.TxnFailed = operations.Cast<CompareAndSwapOperation>().Sum(o => o.Failed);
        }

        run.Failure = target.Failure;
        return run;
    }

    internal static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    internal static long Nanoseconds(long ticks) => (long)(ticks * (1e9 / Stopwatch.Frequency));

    /// <summary>
    /// Waits for the window to open, samples CPU, reads the resident sets every <see cref="ResourceWindow.RssInterval"/>
    /// (for the steady RSS: their median) until the window closes, samples CPU again.
    /// </summary>
    internal static async Task<ResourceUse> SampleAsync(RunningTarget target, long from, long to)
    {
        await DelayUntilAsync(from).ConfigureAwait(false);
        var window = ResourceWindow.Open(target);
        for (var next = from + Ticks(ResourceWindow.RssInterval); next < to; next += Ticks(ResourceWindow.RssInterval))
        {
            await DelayUntilAsync(next).ConfigureAwait(false);
            window.SampleResident();
        }

        await DelayUntilAsync(to).ConfigureAwait(false);
        return window.Close();
    }

    internal static async Task DelayUntilAsync(long timestamp)
    {
        var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), timestamp);
        if (remaining > TimeSpan.Zero)
        {
            await Task.Delay(remaining).ConfigureAwait(false);
        }
    }

    private static async Task LoopAsync(ClientOperation operation, ClientTally tally, long measureFrom, long end)
    {
        while (true)
        {
            var started = Stopwatch.GetTimestamp();
            if (started >= end)
            {
                return;
            }

            var ok = true;
            try
            {
                await operation.ExecuteAsync(new CallOptions(deadline: DateTime.UtcNow + LoadSettings.CallDeadline)).ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                ok = false;
                tally.Failed(e.StatusCode.ToString());
            }

            if (started >= measureFrom)
            {
                if (ok)
                {
                    tally.Operations++;
                    tally.Latency.Record(Nanoseconds(Stopwatch.GetTimestamp() - started));
                }
            }

            if (!ok)
            {
                // A target refusing requests answers instantly; do not turn an error into a busy loop on two cores.
                await Task.Delay(10).ConfigureAwait(false);
            }
        }
    }

    /// <summary>One client's counts, merged after the run so the hot loop shares nothing.</summary>
    private sealed class ClientTally
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
