using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using EtcdShield.LoadGen.Infrastructure;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;
using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Core;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// Lease keep-alive CPU: on a fresh etcd per target, N leases granted through the target, then kept alive at a fixed
/// total rate over one LeaseKeepAlive stream and over K, each stream renewing its own share of the leases round
/// robin. What it measures is what a relay spends per small message on a long-lived duplex stream: keep-alives
/// answered per second, and the proxy's and etcd's CPU per answer.
/// </summary>
internal static class KeepAliveScenario
{
    private const int GrantConcurrency = 64;

    // After the last keep-alive is sent, how long answers still in flight may take before the row ends.
    private static readonly TimeSpan Drain = TimeSpan.FromSeconds(3);

    public static async Task<List<KeepAliveRun>> RunAsync(
        TargetLauncher launcher, BenchPki pki, IReadOnlyList<TargetKind> targets, int rounds, KeepAliveSettings settings, int connections)
    {
        var runs = new List<KeepAliveRun>();
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var kind in BenchmarkSession.Rotate(targets, round - 1))
            {
                runs.AddRange(await RunTargetAsync(launcher, pki, kind, round, settings, connections).ConfigureAwait(false));
            }
        }

        return runs;
    }

    private static async Task<List<KeepAliveRun>> RunTargetAsync(
        TargetLauncher launcher, BenchPki pki, TargetKind kind, int round, KeepAliveSettings settings, int connectionCount)
    {
        var results = new List<KeepAliveRun>();
        var tag = $"r{round}-keepalive-{kind.Id()}";
        try
        {
            using var target = await launcher.StartAsync(kind, tag).ConfigureAwait(false);
            using var connections = EtcdConnections.Open(target.Endpoint, connectionCount, pki);
            using (var connect = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            {
                await connections.ConnectAsync(connect.Token).ConfigureAwait(false);
            }

            var leases = await GrantAsync(connections, settings.Leases).ConfigureAwait(false);

            // A fresh .NET proxy runs its keep-alive path at tier 0 first; the same load, unmeasured, compiles it.
            var most = settings.StreamCounts.Max();
            if (settings.TargetWarmup > TimeSpan.Zero)
            {
                var warmUp = await RunStreamsAsync(target, connections, leases, most, settings.MessagesPerSecond, settings.TargetWarmup, TimeSpan.Zero, round).ConfigureAwait(false);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {kind.Id()}: keep-alive warm-up {settings.TargetWarmup.TotalSeconds:0.#} s over {most} streams{(warmUp.Failure is null ? "" : " FAILED: " + warmUp.Failure)}"));
            }

            foreach (var streams in settings.StreamCounts)
            {
                var run = await RunStreamsAsync(target, connections, leases, streams, settings.MessagesPerSecond, settings.Warmup, settings.Duration, round).ConfigureAwait(false);
                Report(run);
                results.Add(run);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or RpcException or TimeoutException or OperationCanceledException or IOException or HttpRequestException)
        {
            Console.WriteLine($"bench: {tag} FAILED: {e.Message}");
            results.Add(new KeepAliveRun
            {
                Round = round,
                Target = kind,
                Streams = settings.StreamCounts[Math.Min(results.Count, settings.StreamCounts.Count - 1)],
                Leases = settings.Leases,
                TargetPerSecond = settings.MessagesPerSecond,
                Failure = e.GetType().Name + ": " + e.Message.Split('\n')[0],
            });
        }

        return results;
    }

    private static async Task<long[]> GrantAsync(EtcdConnections connections, int count)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var leases = new long[count];
        await Task.WhenAll(Enumerable.Range(0, Math.Min(GrantConcurrency, count)).Select(async w =>
        {
            for (var i = w; i < count; i += GrantConcurrency)
            {
                var granted = await connections.Lease(w).LeaseGrantAsync(
                    new LeaseGrantRequest { TTL = KeepAliveSettings.LeaseTtlSeconds },
                    deadline: DateTime.UtcNow + LoadSettings.CallDeadline,
                    cancellationToken: timeout.Token).ResponseAsync.ConfigureAwait(false);
                leases[i] = granted.ID;
            }
        })).ConfigureAwait(false);
        return leases;
    }

    /// <summary>One row: <paramref name="streamCount"/> streams, <paramref name="perSecond"/> keep-alives per second over them all.</summary>
    private static async Task<KeepAliveRun> RunStreamsAsync(
        RunningTarget target, EtcdConnections connections, long[] leases, int streamCount, int perSecond, TimeSpan warmup, TimeSpan duration, int round)
    {
        var run = new KeepAliveRun { Round = round, Target = target.Kind, Streams = streamCount, Leases = leases.Length, TargetPerSecond = perSecond };
        using var stop = new CancellationTokenSource(warmup + duration + Drain + TimeSpan.FromSeconds(60));
        var streams = new KeepAliveStream[streamCount];
        try
        {
            for (var s = 0; s < streamCount; s++)
            {
                // Stream s renews leases s, s + K, s + 2K, …; streams are spread over the connections like clients.
                streams[s] = new KeepAliveStream(connections.Lease(s), [.. leases.Where((_, i) => i % streamCount == s)], stop.Token);
            }

            ResourceWindow.ResetPeaks(target);
            var start = Stopwatch.GetTimestamp();
            var measureFrom = start + ClosedLoopRunner.Ticks(warmup);
            var end = measureFrom + ClosedLoopRunner.Ticks(duration);
            var sampler = ClosedLoopRunner.SampleAsync(target, measureFrom, end);
            await Task.WhenAll(streams.Select(s => Task.Run(() => s.SendAsync(perSecond / (double)streamCount, start, measureFrom, end)))).ConfigureAwait(false);
            run.Resources = await sampler.ConfigureAwait(false);

            var drainUntil = Stopwatch.GetTimestamp() + ClosedLoopRunner.Ticks(Drain);
            while (streams.Any(s => s.Pending > 0 && s.Error is null) && Stopwatch.GetTimestamp() < drainUntil)
            {
                await Task.Delay(20).ConfigureAwait(false);
            }

            run.Seconds = duration.TotalSeconds;
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            foreach (var stream in streams)
            {
                if (stream is not null)
                {
                    await stream.DisposeAsync().ConfigureAwait(false);
                }
            }
        }

        // Only now that every reader and sender has stopped are their counts safe to read.
        foreach (var stream in streams)
        {
            run.Sent += stream.Sent;
            run.Answered += stream.Answered;
            run.Latency.Add(stream.Latency);
            foreach (var (code, count) in stream.ErrorsByCode)
            {
                run.Errors += count;
                run.ErrorsByCode[code] = run.ErrorsByCode.GetValueOrDefault(code) + count;
            }
        }

        var unanswered = run.Sent - run.Answered - run.Errors;
        if (unanswered > 0)
        {
            run.Errors += unanswered;
            run.ErrorsByCode["unanswered"] = unanswered;
        }

        run.Failure = target.Failure;
        return run;
    }

    private static void Report(KeepAliveRun run)
    {
        var proxy = run.MicrosecondsPerMessage(run.Resources.ProxyCpuSeconds) is { } us
            ? $", proxy {us:0.0} µs/msg, peak {run.Resources.ProxyPeakBytes / 1048576.0:0} MiB"
            : "";
        var errors = run.Errors > 0 ? $", {run.Errors} errors ({string.Join(", ", run.ErrorsByCode.Select(e => $"{e.Key}: {e.Value}"))})" : "";
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  r{run.Round} {run.Target.Id(),-16} keepalive x{run.Streams,-3} {run.AnsweredPerSecond,8:0} msg/s  p50 {run.Latency.ValueAtPercentile(50) / 1e6,7:0.000} ms  p99 {run.Latency.ValueAtPercentile(99) / 1e6,7:0.000} ms, etcd {run.MicrosecondsPerMessage(run.Resources.EtcdCpuSeconds):0.0} µs/msg{proxy}{errors}{(run.Failure is null ? "" : " FAILED: " + run.Failure)}"));
    }

    /// <summary>One LeaseKeepAlive stream: a sender at a fixed rate and a reader matching answers to requests in order.</summary>
    private sealed class KeepAliveStream : IAsyncDisposable
    {
        private readonly AsyncDuplexStreamingCall<LeaseKeepAliveRequest, LeaseKeepAliveResponse> _call;
        private readonly long[] _leases;
        private readonly CancellationToken _stop;
        private readonly ConcurrentQueue<long> _sentAt = new();
        private readonly Task _reader;
        private long _measureFrom = long.MaxValue;
        private long _measureTo = long.MaxValue;

        public KeepAliveStream(Lease.LeaseClient client, long[] leases, CancellationToken stop)
        {
            _leases = leases;
            _stop = stop;
            _call = client.LeaseKeepAlive(cancellationToken: stop);
            _reader = Task.Run(ReadAsync, CancellationToken.None);
        }

        public long Sent { get; private set; }

        public long Answered { get; private set; }

        public int Pending => _sentAt.Count;

        public LatencyHistogram Latency { get; } = new();

        public Dictionary<string, long> ErrorsByCode { get; } = new(StringComparer.Ordinal);

        public string? Error { get; private set; }

        /// <summary>Keep-alives at a fixed rate (catching up, not skipping, when a write is slow) until <paramref name="end"/>.</summary>
        public async Task SendAsync(double perSecond, long start, long measureFrom, long end)
        {
            Volatile.Write(ref _measureFrom, measureFrom);
            Volatile.Write(ref _measureTo, end);
            var interval = Stopwatch.Frequency / perSecond;
            for (long i = 0; Error is null; i++)
            {
                var due = start + (long)(i * interval);
                if (due >= end)
                {
                    return;
                }

                await ClosedLoopRunner.DelayUntilAsync(due).ConfigureAwait(false);
                var sent = Stopwatch.GetTimestamp();
                _sentAt.Enqueue(sent);
                try
                {
                    await _call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = _leases[i % _leases.Length] }).ConfigureAwait(false);
                }
                catch (Exception e) when (e is RpcException or InvalidOperationException)
                {
                    Error ??= "send " + (e is RpcException r ? r.StatusCode.ToString() : "stream closed");
                    return;
                }

                if (sent >= measureFrom && sent < end)
                {
                    Sent++;
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            _call.Dispose();
            await _reader.ConfigureAwait(false);
        }

        private async Task ReadAsync()
        {
            try
            {
                await foreach (var response in _call.ResponseStream.ReadAllAsync(_stop).ConfigureAwait(false))
                {
                    var received = Stopwatch.GetTimestamp();
                    if (!_sentAt.TryDequeue(out var sent))
                    {
                        Failed("answer without a request");
                        continue;
                    }

                    if (sent < Volatile.Read(ref _measureFrom) || sent >= Volatile.Read(ref _measureTo))
                    {
                        continue;
                    }

                    if (response.TTL > 0)
                    {
                        Answered++;
                        Latency.Record(ClosedLoopRunner.Nanoseconds(received - sent));
                    }
                    else
                    {
                        Failed("TTL " + response.TTL.ToString(CultureInfo.InvariantCulture));
                    }
                }
            }
            catch (RpcException e) when (_stop.IsCancellationRequested || e.StatusCode == StatusCode.Cancelled)
            {
                // The row is over.
            }
            catch (OperationCanceledException)
            {
            }
            catch (RpcException e)
            {
                Error = e.StatusCode.ToString();
                Failed(Error);
            }
        }

        private void Failed(string code)
        {
            lock (ErrorsByCode)
            {
                ErrorsByCode[code] = ErrorsByCode.GetValueOrDefault(code) + 1;
            }
        }
    }
}
