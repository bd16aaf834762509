using System.Collections.Concurrent;
using System.Diagnostics;
using OpenTelemetry;

namespace EtcdShield.Telemetry;

/// <summary>
/// The queue between ended spans and the exporter. OpenTelemetry's batch processor spins up to 50,000 times when
/// another request holds the slot it wants, and signals its export thread on every span once a batch is due until
/// that thread runs; on a busy sidecar host (two cores shared with etcd) both grew ratio-1 tracing from ~4 µs to
/// ~30 µs of CPU per request (bench/RESULTS.md, "Tracing cost"). Here a request's whole part is one lock-free
/// enqueue and a count: the exporter is woken once per full batch and otherwise every <see cref="TraceExport.ExportInterval"/>;
/// a full queue drops the span (counted in <see cref="Dropped"/>), never waits.
/// </summary>
internal sealed class SpanQueue : BaseExportProcessor<Activity>
{
    private readonly ConcurrentQueue<Activity> _queue = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _exporting = new();
    private readonly int _capacity;
    private readonly int _batch;
    private readonly TimeSpan _interval;
    private readonly Task _worker;
    private int _count;
    private long _dropped;

    public SpanQueue(BaseExporter<Activity> exporter, int capacity, int batch, TimeSpan interval)
        : base(exporter)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batch, capacity);
        _capacity = capacity;
        _batch = batch;
        _interval = interval;
        _worker = Task.Run(ExportLoopAsync);
    }

    /// <summary>Spans given up because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Spans waiting for the exporter.</summary>
    public int Queued => Volatile.Read(ref _count);

    protected override void OnExport(Activity data)
    {
        // A span that was sampled out is only propagated, never exported (as OpenTelemetry's own activity processors do).
        if (!data.Recorded)
        {
            return;
        }

        var count = Interlocked.Increment(ref _count);
        if (count > _capacity)
        {
            Interlocked.Decrement(ref _count);
            Interlocked.Increment(ref _dropped);
            return;
        }

        _queue.Enqueue(data);

        // Exactly one request sees the count reach a batch: one wake per batch, not one per span.
        if (count == _batch)
        {
            _wake.Release();
        }
    }

    protected override bool OnForceFlush(int timeoutMilliseconds)
    {
        ExportQueued();
        return true;
    }

    protected override bool OnShutdown(int timeoutMilliseconds)
    {
        // The last spans get what is left of the host's shutdown time; a dead collector does not hold the exit longer.
        _stopping.Cancel();
        var timeout = timeoutMilliseconds < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(timeoutMilliseconds);
        var drained = _worker.ContinueWith(_ => ExportQueued(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).Wait(timeout);
        return exporter.Shutdown(drained ? timeoutMilliseconds : 0) && drained;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _stopping.Cancel();
            _stopping.Dispose();
            _wake.Dispose();
        }

        base.Dispose(disposing);
    }

    private async Task ExportLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(_interval, _stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                // Shut down, or disposed without a shutdown: the worker ends quietly.
                return;
            }

            ExportQueued();
        }
    }

    /// <summary>Hands everything queued to the exporter, a batch at a time; the exporter's failures are its own to report.</summary>
    private void ExportQueued()
    {
        // One export at a time: a flush may meet the worker.
        lock (_exporting)
        {
            var spans = new Activity[_batch];
            while (true)
            {
                var taken = 0;
                while (taken < spans.Length && _queue.TryDequeue(out var span))
                {
                    spans[taken++] = span;
                }

                if (taken == 0)
                {
                    return;
                }

                Interlocked.Add(ref _count, -taken);
                try
                {
                    exporter.Export(new Batch<Activity>(spans, taken));
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // An exporter that throws loses this batch, as OpenTelemetry's processor does; the next goes on.
                }

                Array.Clear(spans, 0, taken);
            }
        }
    }
}
