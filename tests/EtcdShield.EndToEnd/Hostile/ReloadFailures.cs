using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using EtcdShield.EndToEnd.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// Counts the failed reloads one in-process proxy reports in <c>etcdshield.config.reloads</c>, by source, listened
/// to on that proxy's own meter factory (the Prometheus endpoint adds up every proxy of the test process).
/// </summary>
internal sealed class ReloadFailures : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _failed = new(StringComparer.Ordinal);

    public ReloadFailures(ShieldServer shield)
    {
        var factory = shield.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Name == "etcdshield.config.reloads")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? source = null;
            var failed = false;
            foreach (var tag in tags)
            {
                source = tag.Key == "source" ? tag.Value as string : source;
                failed |= tag.Key == "result" && tag.Value as string == "failed";
            }

            if (failed && source is not null)
            {
                _failed.AddOrUpdate(source, value, (_, total) => total + value);
            }
        });
        _listener.Start();
    }

    public long Of(string source) => _failed.GetValueOrDefault(source);

    public void Dispose() => _listener.Dispose();
}
