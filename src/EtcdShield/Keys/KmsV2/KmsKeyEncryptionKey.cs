using System.Security.Cryptography;
using System.Text;
using EtcdShield.Encryption;
using EtcdShield.Protocol.KmsV2;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Keys.KmsV2;

/// <summary>
/// One key of a KMS v2 plugin as a KEK. The wrapped DEK stored in each envelope is the plugin's whole
/// EncryptResponse (ciphertext, key_id, annotations), because Decrypt needs all three back; the envelope's
/// KEK id is "kms:" + the plugin's key_id, so a rotation at the plugin shows in every new value and
/// `etcdshield migrate` can move old ones. The two must agree: see <see cref="KmsWrappedDataKey"/>.
/// </summary>
internal sealed class KmsKeyEncryptionKey : IKeyEncryptionKey
{
    public const string IdPrefix = "kms:";

    private const int MaxIdLength = 255;
    private readonly KmsPlugin _plugin;

    public KmsKeyEncryptionKey(KmsPlugin plugin, string keyIdOrKekId)
    {
        _plugin = plugin;
        Id = keyIdOrKekId.StartsWith(IdPrefix, StringComparison.Ordinal) ? keyIdOrKekId : IdFor(keyIdOrKekId);
    }

    public string Id { get; }

    /// <summary>"kms:" + the key id, percent-encoded to printable ASCII; ids too long for an envelope are hashed.</summary>
    public static string IdFor(string keyId)
    {
        var text = new StringBuilder(IdPrefix);
        foreach (var b in Encoding.UTF8.GetBytes(keyId))
        {
            text.Append(b is > 0x20 and < 0x7f and not (byte)'%' ? (char)b : $"%{b:X2}");
        }

        return text.Length <= MaxIdLength
            ? text.ToString()
            : IdPrefix + "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(keyId)));
    }

    public async ValueTask<byte[]> WrapAsync(ReadOnlyMemory<byte> dek, CancellationToken cancellationToken)
    {
        try
        {
            var response = await _plugin.Client.EncryptAsync(
                new EncryptRequest { Plaintext = ByteString.CopyFrom(dek.Span), Uid = Guid.NewGuid().ToString() },
                deadline: DateTime.UtcNow + KmsPlugin.CallTimeout,
                cancellationToken: cancellationToken).ConfigureAwait(false);
            if (response.Ciphertext.IsEmpty || string.IsNullOrEmpty(response.KeyId))
            {
                throw new KeyProviderUnavailableException($"KMS plugin {_plugin.Endpoint} answered Encrypt without ciphertext or key_id");
            }

            // The envelope will carry this KEK's id, and a blob naming another key is refused on unwrap. The plugin
            // rotated since its last Status: fail this one data key (retryable) until the ring follows.
            if (!string.Equals(IdFor(response.KeyId), Id, StringComparison.Ordinal))
            {
                throw new KeyProviderUnavailableException(
                    $"KMS plugin {_plugin.Endpoint} encrypted under key_id '{response.KeyId}', not the current '{Id}'; its key changed and the next status check switches to it");
            }

            return KmsWrappedDataKey.Encode(response);
        }
        catch (RpcException e)
        {
            throw new KeyProviderUnavailableException($"KMS plugin {_plugin.Endpoint} failed to encrypt a data key: {e.StatusCode}: {e.Status.Detail}", e);
        }
    }

    public async ValueTask<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrappedDek, CancellationToken cancellationToken)
    {
        EncryptResponse wrapped = KmsWrappedDataKey.Decode(wrappedDek.Span, Id);
        var request = new DecryptRequest { Ciphertext = wrapped.Ciphertext, KeyId = wrapped.KeyId, Uid = Guid.NewGuid().ToString() };
        request.Annotations.Add(wrapped.Annotations);
        try
        {
            var response = await _plugin.Client.DecryptAsync(request, deadline: DateTime.UtcNow + KmsPlugin.CallTimeout, cancellationToken: cancellationToken)
                .ConfigureAwait(false);
            return response.Plaintext.ToByteArray();
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.InvalidArgument or StatusCode.NotFound or StatusCode.FailedPrecondition or StatusCode.PermissionDenied)
        {
            throw new KeyUnwrapException($"KMS plugin {_plugin.Endpoint} refused to decrypt the data key: {e.StatusCode}: {e.Status.Detail}", e);
        }
        catch (RpcException e)
        {
            throw new KeyProviderUnavailableException($"KMS plugin {_plugin.Endpoint} failed to decrypt a data key: {e.StatusCode}: {e.Status.Detail}", e);
        }
    }
}
