using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using EtcdShield.Encryption;
using EtcdShield.Keys;

namespace EtcdShield.Tests.Encryption;

/// <summary>
/// An <see cref="IMeterFactory"/> whose meters are private to one test, with a listener that records what they
/// measure; tests run in parallel and must not see each other's counts.
/// </summary>
internal sealed class MetricRecorder : IMeterFactory
{
    private readonly ConcurrentBag<Meter> _meters = [];
    private readonly ConcurrentQueue<(string Name, long Value, KeyValuePair<string, object?>[] Tags)> _measurements = new();
    private readonly MeterListener _listener = new();

    public MetricRecorder()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (_meters.Contains(instrument.Meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            _measurements.Enqueue((instrument.Name, value, tags.ToArray())));
        _listener.Start();
        Metrics = new EncryptionMetrics(this);
        KeyMetrics = new KeyMetrics(this);
    }

    public EncryptionMetrics Metrics { get; }

    public KeyMetrics KeyMetrics { get; }

    public Meter Create(MeterOptions options)
    {
        var meter = new Meter(options);
        _meters.Add(meter);
        return meter;
    }

    public long Sum(string name, string? tag = null, string? value = null) =>
        _measurements
            .Where(m => m.Name == name)
            .Where(m => tag is null || m.Tags.Any(t => t.Key == tag && Equals(t.Value, value)))
            .Sum(m => m.Value);

    public void Dispose()
    {
        _listener.Dispose();
        foreach (Meter meter in _meters)
        {
            meter.Dispose();
        }
    }
}
