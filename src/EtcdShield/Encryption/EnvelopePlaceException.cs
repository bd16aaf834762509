namespace EtcdShield.Encryption;

/// <summary>
/// The envelope may be authentic, but not here: a rollback-protected value found at another place in its key's
/// history than it was sealed for (an older value put back, or one from another lifetime of the key), or an
/// unbound v1 value where only bound ones are accepted.
/// </summary>
internal sealed class EnvelopePlaceException : EnvelopeException
{
    public EnvelopePlaceException(EnvelopeErrorReason reason, string message)
        : base(reason, message)
    {
    }
}
