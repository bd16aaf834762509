using EtcdShield.Encryption;
using EtcdShield.Protocol.KmsV2;
using Google.Protobuf;

namespace EtcdShield.Keys.KmsV2;

/// <summary>
/// The wrapped DEK a KMS v2 KEK stores in an envelope: the plugin's EncryptResponse (ciphertext, key_id,
/// annotations), encoded exactly one way. The plugin decrypts by the blob's own key_id and may ignore what it does
/// not know, so without this, bytes anyone with write access to etcd can re-encode (an unknown field, a repeated
/// field) or re-label (another envelope KEK id over the same blob) would still unwrap to the genuine DEK.
/// </summary>
internal static class KmsWrappedDataKey
{
    /// <summary>The canonical bytes of <paramref name="response"/>: its three fields only, unknown ones dropped.</summary>
    public static byte[] Encode(EncryptResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return Canonical(response).ToByteArray();
    }

    /// <summary>
    /// Parses a stored wrapped DEK and checks it is canonical and names the plugin key that <paramref name="kekId"/>
    /// (the envelope's KEK id) stands for.
    /// </summary>
    /// <exception cref="KeyUnwrapException">Not a canonical EncryptResponse for <paramref name="kekId"/>.</exception>
    public static EncryptResponse Decode(ReadOnlySpan<byte> wrapped, string kekId)
    {
        EncryptResponse response;
        try
        {
            response = EncryptResponse.Parser.ParseFrom(wrapped);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new KeyUnwrapException("the wrapped data key is not a KMS v2 EncryptResponse", e);
        }

        // Re-encoding what was understood and comparing bytes refuses every other encoding of the same fields, so a
        // wrapped DEK has exactly one byte form: the one its writer stored.
        if (!Encode(response).AsSpan().SequenceEqual(wrapped))
        {
            throw new KeyUnwrapException("the wrapped data key is not in the canonical KMS v2 EncryptResponse encoding EtcdShield writes");
        }

        if (!string.Equals(KmsKeyEncryptionKey.IdFor(response.KeyId), kekId, StringComparison.Ordinal))
        {
            throw new KeyUnwrapException($"the wrapped data key names another KMS key than the envelope's key-encryption key \"{kekId}\"");
        }

        return response;
    }

    private static EncryptResponse Canonical(EncryptResponse response)
    {
        EncryptResponse canonical = new() { Ciphertext = response.Ciphertext, KeyId = response.KeyId };
        canonical.Annotations.Add(response.Annotations);
        return canonical;
    }
}
