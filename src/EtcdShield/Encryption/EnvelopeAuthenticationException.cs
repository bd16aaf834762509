namespace EtcdShield.Encryption;

/// <summary>
/// The envelope is well formed but not authentic: it was modified, moved to another etcd key, or does not belong
/// to the data key it names.
/// </summary>
internal sealed class EnvelopeAuthenticationException : EnvelopeException
{
    public EnvelopeAuthenticationException(string message, Exception? innerException = null)
        : base(EnvelopeErrorReason.AuthenticationFailed, message, innerException)
    {
    }
}
