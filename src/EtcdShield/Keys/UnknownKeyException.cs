using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>The envelope names a KEK that is not configured (gRPC DATA_LOSS until the operator adds it back).</summary>
internal sealed class UnknownKeyException : EnvelopeException
{
    public UnknownKeyException(string kekId)
        : base(EnvelopeErrorReason.UnknownKey, $"unknown key-encryption key \"{kekId}\"")
    {
        KekId = kekId;
    }

    public string KekId { get; }
}
