namespace EtcdShield.Encryption;

/// <summary>
/// Base of every failure on the value-encryption path. Messages are written for operators and never contain
/// value bytes or key material, so they are safe to return to clients and to log.
/// </summary>
internal abstract class EnvelopeException : Exception
{
    protected EnvelopeException(EnvelopeErrorReason reason, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Reason = reason;
    }

    public EnvelopeErrorReason Reason { get; }
}
