using EtcdShield.EndToEnd.Infrastructure;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>Counters of one in-process proxy, by reason tag, counted since this was created.</summary>
internal sealed class ProxyMeters : IDisposable
{
    public const string DecryptFailures = "etcdshield.encryption.decrypt_failures";

    public const string LegacyPlaintextReads = "etcdshield.encryption.legacy_plaintext_reads";

    private readonly Dictionary<string, MetricCollector<long>> _collectors;

    /// <param name="meter">The product's name of the meter the instruments are on (e.g. EncryptionMetrics.MeterName).</param>
    public ProxyMeters(ShieldServer shield, string meter, params string[] instruments) =>
        _collectors = instruments.ToDictionary(instrument => instrument, instrument => shield.Collect<long>(meter, instrument), StringComparer.Ordinal);

    /// <summary>What <paramref name="instrument"/> counted since this was created, for one reason or (null) all.</summary>
    public long Total(string instrument, string? reason = null) =>
        _collectors[instrument].GetMeasurementSnapshot()
            .Where(m => reason is null || m.ContainsTags(new KeyValuePair<string, object?>("reason", reason)))
            .Sum(m => m.Value);

    public void Dispose()
    {
        foreach (var collector in _collectors.Values)
        {
            collector.Dispose();
        }
    }
}
