using System.Collections.Concurrent;
using System.Diagnostics;

namespace EtcdShield.Tests;

/// <summary>
/// The spans of one ActivitySource name as they end, decided by <see cref="Sampling"/> (every span recorded
/// unless a test says otherwise). Sources are shared by name across the test process, so tests pick their own
/// spans by trace id (<see cref="OfTrace"/>), or keep every test that listens to a source in one class.
/// </summary>
internal sealed class CollectedSpans : IDisposable
{
    private readonly ConcurrentQueue<Activity> _ended = new();
    private readonly ActivityListener _listener;

    public CollectedSpans(string sourceName)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == sourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => Sampling,
            ActivityStopped = _ended.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public ActivitySamplingResult Sampling { get; set; } = ActivitySamplingResult.AllDataAndRecorded;

    public IReadOnlyList<Activity> Ended => [.. _ended];

    public IReadOnlyList<Activity> OfTrace(ActivityTraceId trace) => [.. _ended.Where(a => a.TraceId == trace)];

    public void Dispose() => _listener.Dispose();
}
