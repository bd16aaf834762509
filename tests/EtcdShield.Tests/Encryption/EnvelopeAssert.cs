using EtcdShield.Encryption;

namespace EtcdShield.Tests.Encryption;

internal static class EnvelopeAssert
{
    /// <summary>Opening must fail with an envelope error, never succeed and never fail some other way.</summary>
    public static EnvelopeException OpenFails(DataKey key, byte[] etcdKey, byte[] value)
    {
        try
        {
            byte[] opened = ValueEnvelope.Open(key, etcdKey, value);
            throw Xunit.Sdk.FailException.ForFailure($"Opening a tampered envelope succeeded and returned {opened.Length} bytes.");
        }
        catch (EnvelopeException ex)
        {
            return ex;
        }
    }
}
