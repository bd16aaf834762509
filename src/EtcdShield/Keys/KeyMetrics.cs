using System.Diagnostics.Metrics;

namespace EtcdShield.Keys;

/// <summary>The data-key and key-encryption-key counters, the "EtcdShield.Keys" meter. Tags carry reasons and outcomes, never key material.</summary>
internal sealed class KeyMetrics
{
    public const string MeterName = "EtcdShield.Keys";

    private readonly Counter<long> _dekRotations;
    private readonly Counter<long> _kekUnwraps;

    public KeyMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        Meter meter = meterFactory.Create(MeterName);
        _dekRotations = meter.CreateCounter<long>(
            "etcdshield.keys.dek_rotations", "{key}", "Data keys created for encryption, by reason.");
        _kekUnwraps = meter.CreateCounter<long>(
            "etcdshield.keys.kek_unwraps", "{call}", "Calls to a key-encryption key to unwrap a data key, by outcome.");
    }

    public void DataKeyRotated(string reason) => _dekRotations.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void KekUnwrapped(string outcome) => _kekUnwraps.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
}
