namespace EtcdShield.Encryption;

/// <summary>A value that claims to be an envelope is structurally invalid or of an unknown version.</summary>
internal sealed class EnvelopeFormatException : EnvelopeException
{
    public EnvelopeFormatException(EnvelopeErrorReason reason, string message)
        : base(reason, message)
    {
        if (reason is not (EnvelopeErrorReason.Malformed or EnvelopeErrorReason.UnsupportedVersion))
        {
            throw new ArgumentOutOfRangeException(nameof(reason), reason, "A format error is either Malformed or UnsupportedVersion.");
        }
    }
}
