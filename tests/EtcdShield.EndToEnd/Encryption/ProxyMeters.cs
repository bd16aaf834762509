using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using EtcdShield.EndToEnd.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// Totals of the counters one in-process proxy records, by instrument and reason tag, listened to directly
/// on the meters of that proxy's own meter factory.
/// </summary>
/// <remarks>
/// The Prometheus endpoint cannot give per-proxy counts while several proxies share the test process: the
/// exporter subscribes to meters by name, so it adds up every proxy's EtcdShield.* counters, and once any
/// other proxy is disposed its instruments' end also ends the shared streams (they read 0 from then on).
/// <see cref="MetricsEndpointTests"/> checks the endpoint itself, alone in the process.
/// </remarks>
internal sealed class ProxyMeters : IDisposable
{
    public const string DecryptFailures = "etcdshield.encryption.decrypt_failures";

    public const string LegacyPlaintextReads = "etcdshield.encryption.legacy_plaintext_reads";

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<(string Instrument, string? Reason), long> _totals = new();

    public ProxyMeters(ShieldServer shield)
    {
        var factory = shield.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, factory))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? reason = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "reason")
                {
                    reason = tag.Value as string;
                }
            }

            _totals.AddOrUpdate((instrument.Name, reason), value, (_, total) => total + value);
        });
        _listener.Start();
    }

    /// <summary>What <paramref name="instrument"/> counted since this was created, for one reason or (null) all.</summary>
    public long Total(string instrument, string? reason = null) =>
        _totals.Where(t => t.Key.Instrument == instrument && (reason is null || t.Key.Reason == reason)).Sum(t => t.Value);

    public void Dispose() => _listener.Dispose();
}
