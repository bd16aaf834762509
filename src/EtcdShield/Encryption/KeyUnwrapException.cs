namespace EtcdShield.Encryption;

/// <summary>
/// The wrapped bytes are not a data key wrapped by this KEK: the stored value was tampered with, or a different
/// key was configured under the same KEK id (gRPC DATA_LOSS).
/// </summary>
internal sealed class KeyUnwrapException : EnvelopeException
{
    public KeyUnwrapException(string message, Exception? innerException = null)
        : base(EnvelopeErrorReason.AuthenticationFailed, message, innerException)
    {
    }
}
