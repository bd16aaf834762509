using System.Diagnostics;
using EtcdShield.Telemetry;
using OpenTelemetry;

namespace EtcdShield.Tests.Telemetry;

public sealed class SpanQueueTests
{
    private static readonly TimeSpan Never = TimeSpan.FromHours(1);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_full_batch_wakes_the_exporter_without_waiting_for_the_interval()
    {
        var exporter = new RecordingExporter();
        using var queue = new SpanQueue(exporter, capacity: 8, batch: 4, interval: Never);

        for (var i = 0; i < 4; i++)
        {
            queue.OnEnd(Span($"s{i}"));
        }

        var exported = await exporter.Exported(4).WaitAsync(Patience);

        Assert.Equal(["s0", "s1", "s2", "s3"], exported);
    }

    [Fact]
    public async Task A_full_queue_drops_new_spans_and_counts_them_instead_of_waiting_for_a_stuck_exporter()
    {
        var exporter = new RecordingExporter { Stuck = true };
        using var queue = new SpanQueue(exporter, capacity: 2, batch: 2, interval: Never);
        queue.OnEnd(Span("a"));
        queue.OnEnd(Span("b"));
        await exporter.Entered.WaitAsync(Patience);

        // The exporter holds a and b; the queue takes two more and drops the fifth.
        queue.OnEnd(Span("c"));
        queue.OnEnd(Span("d"));
        queue.OnEnd(Span("e"));
        var queued = queue.Queued;
        exporter.Release();
        var exported = await exporter.Exported(2).WaitAsync(Patience);
        queue.ForceFlush();

        Assert.Equal(1, queue.Dropped);
        Assert.Equal(2, queued);
        Assert.Equal(["a", "b"], exported);
        Assert.Equal(["a", "b", "c", "d"], exporter.Names);
    }

    [Fact]
    public void Shutdown_exports_what_is_queued_short_of_a_batch()
    {
        var exporter = new RecordingExporter();
        var queue = new SpanQueue(exporter, capacity: 8, batch: 4, interval: Never);
        queue.OnEnd(Span("only"));

        var shut = queue.Shutdown(20_000);
        queue.Dispose();

        Assert.True(shut);
        Assert.Equal(["only"], exporter.Names);
    }

    [Fact]
    public void An_unrecorded_span_is_not_queued()
    {
        var exporter = new RecordingExporter();
        using var queue = new SpanQueue(exporter, capacity: 8, batch: 4, interval: Never);
        var unrecorded = new Activity("dropped");
        unrecorded.Start();
        unrecorded.Stop();

        queue.OnEnd(unrecorded);
        queue.ForceFlush();

        Assert.Equal(0, queue.Queued);
        Assert.Empty(exporter.Names);
    }

    private static Activity Span(string name)
    {
        var span = new Activity(name) { ActivityTraceFlags = ActivityTraceFlags.Recorded };
        span.Start();
        span.Stop();
        return span;
    }

    private sealed class RecordingExporter : BaseExporter<Activity>
    {
        private readonly List<string> _names = [];
        private readonly ManualResetEventSlim _gate = new(initialState: true);
        private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource<string[]>? _waiting;
        private int _waitingFor;

        public bool Stuck
        {
            init
            {
                if (value)
                {
                    _gate.Reset();
                }
            }
        }

        public Task Entered => _entered.Task;

        public string[] Names
        {
            get
            {
                lock (_names)
                {
                    return [.. _names];
                }
            }
        }

        public Task<string[]> Exported(int count)
        {
            lock (_names)
            {
                _waitingFor = count;
                _waiting = new TaskCompletionSource<string[]>(TaskCreationOptions.RunContinuationsAsynchronously);
                Complete();
                return _waiting.Task;
            }
        }

        public void Release() => _gate.Set();

        public override ExportResult Export(in Batch<Activity> batch)
        {
            _entered.TrySetResult();
            _gate.Wait();
            lock (_names)
            {
                foreach (var span in batch)
                {
                    _names.Add(span.DisplayName);
                }

                Complete();
            }

            return ExportResult.Success;
        }

        protected override void Dispose(bool disposing)
        {
            _gate.Dispose();
            base.Dispose(disposing);
        }

        private void Complete()
        {
            if (_waiting is not null && _names.Count >= _waitingFor)
            {
                _waiting.TrySetResult([.. _names.Take(_waitingFor)]);
            }
        }
    }
}
