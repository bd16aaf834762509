using System.Diagnostics.Metrics;

namespace EtcdShield.Encryption;

/// <summary>The value-encryption counters, the "EtcdShield.Encryption" meter. Tags carry reasons, never keys or values.</summary>
internal sealed class EncryptionMetrics
{
    public const string MeterName = "EtcdShield.Encryption";

    private readonly Counter<long> _decryptFailures;
    private readonly Counter<long> _encryptFailures;
    private readonly Counter<long> _legacyPlaintextReads;
    private readonly Counter<long> _guardRetries;
    private readonly Counter<long> _guardExhausted;

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
        _guardRetries = meter.CreateCounter<long>(
            "etcdshield.txn.guard_retries", "{attempt}", "Value-compare txns decided again because a compared key changed before etcd committed.");
        _guardExhausted = meter.CreateCounter<long>(
            "etcdshield.txn.guard_exhausted", "{request}", "Value-compare txns answered ABORTED because the compared keys kept changing.");
        // Every reason exported from the start, so that an alert's increase() counts the first failure too.
        foreach (var reason in Enum.GetValues<EnvelopeErrorReason>().Select(ReasonTag).Append("not_encrypted").Distinct())
        {
            _decryptFailures.Add(0, Reason(reason));
            _encryptFailures.Add(0, Reason(reason));
        }

        _encryptFailures.Add(0, Reason("too_large"));
        _legacyPlaintextReads.Add(0);
        _guardRetries.Add(0);
        _guardExhausted.Add(0);
    }

    public void DecryptFailed(EnvelopeErrorReason reason) => _decryptFailures.Add(1, Reason(ReasonTag(reason)));

    /// <summary>An unencrypted value under an encrypted prefix, outside any migration window.</summary>
    public void PlaintextRefused() => _decryptFailures.Add(1, Reason("not_encrypted"));

    public void EncryptFailed(string reason) => _encryptFailures.Add(1, Reason(reason));

    public void LegacyPlaintextRead() => _legacyPlaintextReads.Add(1);

    /// <summary>A value-compare txn is decided again: a compared key changed before etcd committed it.</summary>
    public void GuardRetried() => _guardRetries.Add(1);

    /// <summary>A value-compare txn is answered ABORTED: the compared keys kept changing.</summary>
    public void GuardExhausted() => _guardExhausted.Add(1);

    public static string ReasonTag(EnvelopeErrorReason reason) => reason switch
    {
        EnvelopeErrorReason.Malformed => "malformed",
        EnvelopeErrorReason.UnsupportedVersion => "unsupported_version",
        EnvelopeErrorReason.AuthenticationFailed => "authentication_failed",
        EnvelopeErrorReason.UnknownKey => "unknown_key",
        EnvelopeErrorReason.KeyUnavailable => "key_unavailable",
        EnvelopeErrorReason.RolledBack => "rolled_back",
        EnvelopeErrorReason.Unbound => "unbound",
        _ => "other",
    };

    private static KeyValuePair<string, object?> Reason(string reason) => new("reason", reason);
}
