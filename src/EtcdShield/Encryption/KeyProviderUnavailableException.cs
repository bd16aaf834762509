namespace EtcdShield.Encryption;

/// <summary>The KEK provider is down or refused the operation; retrying later may succeed (gRPC UNAVAILABLE).</summary>
internal sealed class KeyProviderUnavailableException : EnvelopeException
{
    public KeyProviderUnavailableException(string message, Exception? innerException = null)
        : base(EnvelopeErrorReason.KeyUnavailable, message, innerException)
    {
    }
}
