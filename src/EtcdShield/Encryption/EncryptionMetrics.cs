using System.Diagnostics.Metrics;

namespace EtcdShield.Encryption;

/// <summary>The value-encryption counters, on the "EtcdShield" meter. Tags carry reasons, never keys or values.</summary>
internal sealed class EncryptionMetrics
{
    public const string MeterName = "EtcdShield";

    private readonly Counter<long> _decryptFailures;
    private readonly Counter<long> _encryptFailures;
    private readonly Counter<long> _legacyPlaintextReads;
    private readonly Counter<long> _dekRotations;
    private readonly Counter<long> _kekUnwraps;

    public EncryptionMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        Meter meter = meterFactory.Create(MeterName);
        _decryptFailures = meter.CreateCounter<long>(
            "etcdshield.encryption.decrypt_failures", "{value}", "Stored values that could not be returned decrypted, by reason.");
        _encryptFailures = meter.CreateCounter<long>(
            "etcdshield.encryption.encrypt_failures", "{value}", "Writes refused because the value could not be encrypted, by reason.");
        _legacyPlaintextReads = meter.CreateCounter<long>(
            "etcdshield.encryption.legacy_plaintext_reads", "{value}", "Unencrypted values returned as is inside a legacy-plaintext migration window.");
        _dekRotations = meter.CreateCounter<long>(
            "etcdshield.keys.dek_rotations", "{key}", "Data keys created for encryption, by reason.");
        _kekUnwraps = meter.CreateCounter<long>(
            "etcdshield.keys.kek_unwraps", "{call}", "Calls to a key-encryption key to unwrap a data key, by outcome.");
    }

    public void DecryptFailed(EnvelopeErrorReason reason) => _decryptFailures.Add(1, Reason(ReasonTag(reason)));

    /// <summary>An unencrypted value under an encrypted prefix, outside any migration window.</summary>
    public void PlaintextRefused() => _decryptFailures.Add(1, Reason("not_encrypted"));

    public void EncryptFailed(string reason) => _encryptFailures.Add(1, Reason(reason));

    public void LegacyPlaintextRead() => _legacyPlaintextReads.Add(1);

    public void DataKeyRotated(string reason) => _dekRotations.Add(1, Reason(reason));

    public void KekUnwrapped(string outcome) => _kekUnwraps.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    public static string ReasonTag(EnvelopeErrorReason reason) => reason switch
    {
        EnvelopeErrorReason.Malformed => "malformed",
        EnvelopeErrorReason.UnsupportedVersion => "unsupported_version",
        EnvelopeErrorReason.AuthenticationFailed => "authentication_failed",
        EnvelopeErrorReason.UnknownKey => "unknown_key",
        EnvelopeErrorReason.KeyUnavailable => "key_unavailable",
        _ => "other",
    };

    private static KeyValuePair<string, object?> Reason(string reason) => new("reason", reason);
}
