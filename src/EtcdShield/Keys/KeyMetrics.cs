using System.Diagnostics.Metrics;

namespace EtcdShield.Keys;

/// <summary>The data-key and key-encryption-key counters, the "EtcdShield.Keys" meter. Tags carry reasons and outcomes, never key material.</summary>
internal sealed class KeyMetrics
{
    public const string MeterName = "EtcdShield.Keys";

    private readonly Meter _meter;
    private readonly Counter<long> _dekRotations;
    private readonly Counter<long> _kekUnwraps;

    public KeyMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(MeterName);
        _dekRotations = _meter.CreateCounter<long>(
            "etcdshield.keys.dek_rotations", "{key}", "Data keys created for encryption, by reason.");
        _kekUnwraps = _meter.CreateCounter<long>(
            "etcdshield.keys.kek_unwraps", "{call}", "Calls to a key-encryption key to unwrap a data key, by outcome.");
        // Every outcome exported from the start, so that an alert's increase() counts the first failure too.
        foreach (var outcome in UnwrapOutcomes)
        {
            _kekUnwraps.Add(0, Outcome(outcome));
        }
    }

    /// <summary>The outcomes of <see cref="KekUnwrapped"/>: the KEK answered, refused the wrapping, or could not be reached.</summary>
    public static readonly IReadOnlyList<string> UnwrapOutcomes = ["success", "invalid", "unavailable"];

    /// <summary>
    /// Which KEK versions are in use: the one new data keys are wrapped by (a gauge of 1 tagged with its id), and how
    /// many data keys each KEK's wrapping unlocked that the proxy holds now (for writes and reads).
    /// </summary>
    public void ObserveKeys(Func<string> currentKek, Func<IReadOnlyDictionary<string, int>> dataKeysByKek)
    {
        _meter.CreateObservableGauge(
            "etcdshield.keys.kek_current",
            () => new Measurement<int>(1, new KeyValuePair<string, object?>("kek", currentKek())),
            unit: "{key}",
            description: "1, tagged with the id (label and version) of the key-encryption key that wraps new data keys.");
        _meter.CreateObservableGauge(
            "etcdshield.keys.data_keys",
            () => dataKeysByKek().Select(pair => new Measurement<int>(pair.Value, new KeyValuePair<string, object?>("kek", pair.Key))),
            unit: "{key}",
            description: "Data keys the proxy holds unwrapped now (cached for reads, or sealing writes), by the key-encryption key that wraps them.");
    }

    public void DataKeyRotated(string reason) => _dekRotations.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void KekUnwrapped(string outcome) => _kekUnwraps.Add(1, Outcome(outcome));

    private static KeyValuePair<string, object?> Outcome(string outcome) => new("outcome", outcome);
}
