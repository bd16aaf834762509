using EtcdShield.Encryption;

namespace EtcdShield.Tests.Encryption;

/// <summary>Rebuilds a real envelope with some header fields swapped, as an attacker with etcd write access could.</summary>
internal static class EnvelopeForgery
{
    public static byte[] Rebuild(byte[] envelope, DataKeyId? keyId = null, string? kekId = null, byte[]? wrappedKey = null)
    {
        EnvelopeHeader header = ValueEnvelope.Parse(envelope);
        byte[] prefix = ValueEnvelope.CreateHeaderPrefix(
            keyId ?? header.DataKeyId,
            kekId ?? header.GetKekIdString(),
            wrappedKey ?? header.WrappedKey.ToArray(),
            out _);
        return [.. prefix, .. header.Nonce, .. envelope.AsSpan(header.Length)];
    }
}
