using System.Buffers.Binary;
using System.Diagnostics;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// Watch fan-out: N watchers, each on its own Watch stream (as N independent clients would be), spread round robin
/// over the connections; one writer puts at a fixed rate. <see cref="WorkloadKind.Watch"/>: every watcher on one
/// prefix, so every put is an event for all N (what a shared upstream watch coalesces). <see cref="WorkloadKind.WatchKeys"/>:
/// watcher i on key i alone and the writer cycling over the N keys, so no two watchers could share anything. Either
/// way each watcher gets --watch-rate events per second. Every value starts with the Stopwatch timestamp taken just
/// before its put was sent, so each watcher measures put-to-event latency for every event it receives, through
/// whatever the target does to the value on the way.
/// </summary>
internal static class WatchFanOut
{
    private static readonly ByteString Prefix = ByteString.CopyFromUtf8("/registry/bench/watch/");
    private static readonly ByteString PrefixEnd = ByteString.CopyFromUtf8("/registry/bench/watch0");
    private const string KeysPrefix = "/registry/bench/watchkeys/key-";

    // After the last put, how long watchers may take to receive what is still in flight before the run ends.
    private static readonly TimeSpan Drain = TimeSpan.FromSeconds(3);

    // Streams opened at once: enough that 10,000 open in seconds, few enough that one batch's HEADERS frames and
    // created answers do not all queue behind each other on the target.
    private const int OpenBatch = 500;

    // Puts in flight at most: watch-keys at 1000 watchers asks for 1000+ puts/s, more than one put at a time can
    // send at a millisecond's latency; the prefix workload's few puts per second never have more than one in flight.
    private const int MaxPutsInFlight = 64;

    // Watchers record into these, chosen by index: 10,000 private 58 KB histograms would be 580 MB of load generator.
    private const int HistogramStripes = 64;

    public static async Task<WorkloadRun> RunAsync(RunningTarget target, EtcdConnections connections, WorkloadKind kind, int valueSize, LoadSettings settings, int round)
    {
        var distinctKeys = kind == WorkloadKind.WatchKeys;
        var run = new WorkloadRun
        {
            Round = round,
            Target = target.Target,
            Workload = new Workload(kind, valueSize),
            Watchers = settings.Watchers,
        };
        using var stop = new CancellationTokenSource();
        var watchers = new Watcher[settings.Watchers];
        var stripes = Enumerable.Range(0, Math.Min(HistogramStripes, watchers.Length)).Select(_ => new LatencyHistogram()).ToArray();
        try
        {
            // The peak covers opening the streams too: 10,000 of them may cost more than their steady state.
            ResourceWindow.ResetPeaks(target);
            run.ProxyResidentBeforeWatchers = target.ProxyPid is { } pid ? ProcessSampler.ResidentBytes(pid) : null;
            var opening = Stopwatch.GetTimestamp();
            for (var batch = 0; batch < watchers.Length; batch += OpenBatch)
            {
                var created = new List<Task>();
                for (var w = batch; w < Math.Min(watchers.Length, batch + OpenBatch); w++)
                {
                    var (key, rangeEnd) = distinctKeys ? (KeyOf(w), ByteString.Empty) : (Prefix, PrefixEnd);
                    watchers[w] = new Watcher(connections.Watch(w), stripes[w % stripes.Length], stop.Token);
                    created.Add(watchers[w].CreateAsync(key, rangeEnd));
                }

                await Task.WhenAll(created).WaitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            }

            run.WatchOpenSeconds = Stopwatch.GetElapsedTime(opening).TotalSeconds;
            stop.CancelAfter(settings.Warmup + settings.Duration + Drain + TimeSpan.FromSeconds(60));
            var start = Stopwatch.GetTimestamp();
            var measureFrom = start + ClosedLoopRunner.Ticks(settings.Warmup);
            var end = measureFrom + ClosedLoopRunner.Ticks(settings.Duration);
            foreach (var watcher in watchers)
            {
                watcher.MeasureFrom = measureFrom;
                watcher.MeasureTo = end;
            }

            var sampler = ClosedLoopRunner.SampleAsync(target, measureFrom, end);
            var putsPerSecond = distinctKeys ? settings.WatchPutsPerSecond * watchers.Length : settings.WatchPutsPerSecond;
            Func<long, ByteString> keyOfPut = distinctKeys ? i => KeyOf((int)(i % watchers.Length)) : i => Prefix.Concat((int)(i % 100));
            var puts = await WriteAsync(connections.Kv(0), keyOfPut, valueSize, putsPerSecond, start, measureFrom, end, run, stop.Token).ConfigureAwait(false);
            run.Resources = await sampler.ConfigureAwait(false);

            // Events of puts sent before the window closed may still be on their way; wait for them, boundedly.
            var expected = distinctKeys ? puts : puts * watchers.Length;
            var drainUntil = Stopwatch.GetTimestamp() + ClosedLoopRunner.Ticks(Drain);
            while (watchers.Sum(w => w.Events) < expected && Stopwatch.GetTimestamp() < drainUntil)
            {
                await Task.Delay(50).ConfigureAwait(false);
            }

            run.Puts = puts;
            run.ExpectedEvents = expected;
            run.Seconds = settings.Duration.TotalSeconds;
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            foreach (var watcher in watchers)
            {
                if (watcher is not null)
                {
                    await watcher.DisposeAsync().ConfigureAwait(false);
                }
            }
        }

        // Only now that every reader has stopped are the watchers' counts and histograms final.
        foreach (var watcher in watchers)
        {
            run.Operations += watcher.Events;
            if (watcher.Error is { } error)
            {
                run.Errors++;
                run.ErrorsByCode[error] = run.ErrorsByCode.GetValueOrDefault(error) + 1;
            }
        }

        foreach (var stripe in stripes)
        {
            run.Latency.Add(stripe);
        }

        run.Failure = target.Failure;
        return run;
    }

    private static ByteString KeyOf(int watcher) =>
        ByteString.CopyFromUtf8(KeysPrefix + watcher.ToString("D6", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>
    /// Puts at a fixed rate, up to <see cref="MaxPutsInFlight"/> at once (catching up, not skipping, when puts are
    /// slow); returns the puts sent in the window that etcd acknowledged.
    /// </summary>
    private static async Task<long> WriteAsync(
        KV.KVClient kv, Func<long, ByteString> keyOf, int valueSize, double perSecond, long start, long measureFrom, long end, WorkloadRun run, CancellationToken cancellationToken)
    {
        var value = new byte[Math.Max(valueSize, sizeof(long))];
        Random.Shared.NextBytes(value);
        var interval = Stopwatch.Frequency / perSecond;
        long inWindow = 0;
        using var slots = new SemaphoreSlim(MaxPutsInFlight);
        for (long i = 0; ; i++)
        {
            // Half an interval in, so no put is due exactly at a window's edge, where timer jitter would decide whether it counts.
            var due = start + (long)((i + 0.5) * interval);
            if (due >= end)
            {
                break;
            }

            await ClosedLoopRunner.DelayUntilAsync(due).ConfigureAwait(false);
            await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
            var sent = Stopwatch.GetTimestamp();
            BinaryPrimitives.WriteInt64LittleEndian(value, sent);
            // The watchers count an event by the same test, so a put sent late (behind schedule, past the end) counts for neither.
            _ = PutAsync(new PutRequest { Key = keyOf(i), Value = ByteString.CopyFrom(value) }, sent >= measureFrom && sent < end);
        }

        // Every slot back: no put still in flight.
        for (var s = 0; s < MaxPutsInFlight; s++)
        {
            await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        return Interlocked.Read(ref inWindow);

        async Task PutAsync(PutRequest request, bool counts)
        {
            try
            {
                await kv.PutAsync(request, deadline: DateTime.UtcNow + LoadSettings.CallDeadline, cancellationToken: cancellationToken).ResponseAsync.ConfigureAwait(false);
                if (counts)
                {
                    Interlocked.Increment(ref inWindow);
                }
            }
            catch (RpcException e)
            {
                var code = "put " + e.StatusCode;
                lock (run)
                {
                    run.Errors++;
                    run.ErrorsByCode[code] = run.ErrorsByCode.GetValueOrDefault(code) + 1;
                }
            }
            finally
            {
                slots.Release();
            }
        }
    }

    private static ByteString Concat(this ByteString prefix, int suffix) =>
        ByteString.CopyFromUtf8(prefix.ToStringUtf8() + suffix.ToString("D3", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>One watcher: its own stream and count; its latencies go to a histogram it shares with every 64th watcher, under a lock.</summary>
    private sealed class Watcher : IAsyncDisposable
    {
        private readonly AsyncDuplexStreamingCall<WatchRequest, WatchResponse> _call;
        private readonly CancellationToken _stop;
        private readonly TaskCompletionSource _created = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly LatencyHistogram _latency;
        private Task? _reader;
        private long _events;

        public Watcher(Watch.WatchClient client, LatencyHistogram latency, CancellationToken stop)
        {
            _stop = stop;
            _latency = latency;
            _call = client.Watch(cancellationToken: stop);
        }

        public long MeasureFrom { get; set; } = long.MaxValue;

        public long MeasureTo { get; set; } = long.MaxValue;

        public long Events => Volatile.Read(ref _events);

        public string? Error { get; private set; }

        public async Task CreateAsync(ByteString key, ByteString rangeEnd)
        {
            await _call.RequestStream.WriteAsync(new WatchRequest
            {
                CreateRequest = new WatchCreateRequest { Key = key, RangeEnd = rangeEnd },
            }).ConfigureAwait(false);
            _reader = ReadAsync();
            await _created.Task.ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            _call.Dispose();
            if (_reader is not null)
            {
                await _reader.ConfigureAwait(false);
            }
        }

        private async Task ReadAsync()
        {
            try
            {
                await foreach (var response in _call.ResponseStream.ReadAllAsync(_stop).ConfigureAwait(false))
                {
                    var received = Stopwatch.GetTimestamp();
                    if (response.Created)
                    {
                        _created.TrySetResult();
                    }

                    if (response.Canceled)
                    {
                        Error = "watch canceled: " + response.CancelReason;
                        _created.TrySetException(new InvalidOperationException(Error));
                        return;
                    }

                    foreach (var change in response.Events)
                    {
                        var value = change.Kv?.Value;
                        if (value is null || value.Length < sizeof(long))
                        {
                            continue;
                        }

                        var sent = BinaryPrimitives.ReadInt64LittleEndian(value.Span);
                        if (sent >= MeasureFrom && sent < MeasureTo)
                        {
                            Interlocked.Increment(ref _events);
                            lock (_latency)
                            {
                                _latency.Record(ClosedLoopRunner.Nanoseconds(received - sent));
                            }
                        }
                    }
                }
            }
            catch (RpcException e) when (_stop.IsCancellationRequested || e.StatusCode == StatusCode.Cancelled)
            {
                // The run is over.
            }
            catch (OperationCanceledException)
            {
            }
            catch (RpcException e)
            {
                Error = e.StatusCode.ToString();
                _created.TrySetException(e);
            }
            finally
            {
                _created.TrySetException(new InvalidOperationException("the watch stream ended before the watch was created"));
            }
        }
    }
}
