using EtcdShield.EndToEnd.Infrastructure;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// Counts the failed reloads one in-process proxy reports in <c>etcdshield.config.reloads</c>, by source, on that
/// proxy's own meter factory (the Prometheus endpoint adds up every proxy of the test process).
/// </summary>
internal sealed class ReloadFailures(ShieldServer shield) : IDisposable
{
    private readonly MetricCollector<long> _reloads = shield.Collect<long>(EtcdShield.Reload.ConfigurationReloader.MeterName, "etcdshield.config.reloads");

    public long Of(string source) =>
        _reloads.GetMeasurementSnapshot()
            .Where(m => m.ContainsTags(new KeyValuePair<string, object?>("source", source), new KeyValuePair<string, object?>("result", "failed")))
            .Sum(m => m.Value);

    public void Dispose() => _reloads.Dispose();
}
