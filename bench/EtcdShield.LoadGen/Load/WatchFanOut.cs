using System.Buffers.Binary;
using System.Diagnostics;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// Watch fan-out: N watchers, each on its own Watch stream (as N independent clients would be), spread over the
/// connections, all watching one prefix; one writer puts under it at a fixed rate. Every value starts with the
/// Stopwatch timestamp taken just before its put was sent, so each watcher measures put-to-event latency for every
/// event it receives, through whatever the target does to the value on the way.
/// </summary>
internal static class WatchFanOut
{
    private static readonly ByteString Prefix = ByteString.CopyFromUtf8("/registry/bench/watch/");
    private static readonly ByteString PrefixEnd = ByteString.CopyFromUtf8("/registry/bench/watch0");

    // After the last put, how long watchers may take to receive what is still in flight before the run ends.
    private static readonly TimeSpan Drain = TimeSpan.FromSeconds(3);

    public static async Task<WorkloadRun> RunAsync(RunningTarget target, EtcdConnections connections, int valueSize, LoadSettings settings, int round)
    {
        var run = new WorkloadRun
        {
            Round = round,
            Target = target.Kind,
            Workload = new Workload(WorkloadKind.Watch, valueSize),
            Watchers = settings.Watchers,
        };
        using var stop = new CancellationTokenSource(settings.Warmup + settings.Duration + Drain + TimeSpan.FromSeconds(60));
        var watchers = new Watcher[settings.Watchers];
        try
        {
            // Open in batches so 1000 stream creations do not all queue on one connection's first flight.
            for (var batch = 0; batch < watchers.Length; batch += 100)
            {
                var created = new List<Task>();
                for (var w = batch; w < Math.Min(watchers.Length, batch + 100); w++)
                {
                    watchers[w] = new Watcher(connections.Watch(w), stop.Token);
                    created.Add(watchers[w].CreateAsync());
                }

                await Task.WhenAll(created).WaitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            }

            ResourceWindow.ResetPeaks(target);
            var start = Stopwatch.GetTimestamp();
            var measureFrom = start + ClosedLoopRunner.Ticks(settings.Warmup);
            var end = measureFrom + ClosedLoopRunner.Ticks(settings.Duration);
            foreach (var watcher in watchers)
            {
                watcher.MeasureFrom = measureFrom;
                watcher.MeasureTo = end;
            }

            var sampler = ClosedLoopRunner.SampleAsync(target, measureFrom, end);
            var puts = await WriteAsync(connections.Kv(0), valueSize, settings.WatchPutsPerSecond, start, measureFrom, end, run, stop.Token).ConfigureAwait(false);
            run.Resources = await sampler.ConfigureAwait(false);

            // Events of puts sent before the window closed may still be on their way; wait for them, boundedly.
            var expected = (long)puts * watchers.Length;
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

        // Only now that every reader has stopped are the watchers' histograms safe to read.
        foreach (var watcher in watchers)
        {
            run.Operations += watcher.Events;
            run.Latency.Add(watcher.Latency);
            if (watcher.Error is { } error)
            {
                run.Errors++;
                run.ErrorsByCode[error] = run.ErrorsByCode.GetValueOrDefault(error) + 1;
            }
        }

        run.Failure = target.Failure;
        return run;
    }

    /// <summary>Puts at a fixed rate (catching up, not skipping, when a put is slow); returns the puts sent in the window.</summary>
    private static async Task<int> WriteAsync(
        KV.KVClient kv, int valueSize, int perSecond, long start, long measureFrom, long end, WorkloadRun run, CancellationToken cancellationToken)
    {
        var value = new byte[Math.Max(valueSize, sizeof(long))];
        Random.Shared.NextBytes(value);
        var interval = Stopwatch.Frequency / (double)perSecond;
        var inWindow = 0;
        for (var i = 0; ; i++)
        {
            var due = start + (long)(i * interval);
            if (due >= end)
            {
                return inWindow;
            }

            await ClosedLoopRunner.DelayUntilAsync(due).ConfigureAwait(false);
            var sent = Stopwatch.GetTimestamp();
            BinaryPrimitives.WriteInt64LittleEndian(value, sent);
            try
            {
                await kv.PutAsync(
                    new PutRequest { Key = Prefix.Concat(i % 100), Value = ByteString.CopyFrom(value) },
                    deadline: DateTime.UtcNow + LoadSettings.CallDeadline,
                    cancellationToken: cancellationToken).ResponseAsync.ConfigureAwait(false);
                if (sent >= measureFrom)
                {
                    inWindow++;
                }
            }
            catch (RpcException e)
            {
                run.Errors++;
                var code = "put " + e.StatusCode;
                run.ErrorsByCode[code] = run.ErrorsByCode.GetValueOrDefault(code) + 1;
            }
        }
    }

    private static ByteString Concat(this ByteString prefix, int suffix) =>
        ByteString.CopyFromUtf8(prefix.ToStringUtf8() + suffix.ToString("D3", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>One watcher: its own stream, its own histogram, nothing shared with the others while events flow.</summary>
    private sealed class Watcher : IAsyncDisposable
    {
        private readonly AsyncDuplexStreamingCall<WatchRequest, WatchResponse> _call;
        private readonly CancellationToken _stop;
        private readonly TaskCompletionSource _created = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private Task? _reader;
        private long _events;

        public Watcher(Watch.WatchClient client, CancellationToken stop)
        {
            _stop = stop;
            _call = client.Watch(cancellationToken: stop);
        }

        public long MeasureFrom { get; set; } = long.MaxValue;

        public long MeasureTo { get; set; } = long.MaxValue;

        public long Events => Volatile.Read(ref _events);

        public LatencyHistogram Latency { get; } = new();

        public string? Error { get; private set; }

        public async Task CreateAsync()
        {
            await _call.RequestStream.WriteAsync(new WatchRequest
            {
                CreateRequest = new WatchCreateRequest { Key = Prefix, RangeEnd = PrefixEnd },
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
                            Latency.Record(ClosedLoopRunner.Nanoseconds(received - sent));
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
