using EtcdShield.Encryption;

namespace EtcdShield.Tests.Encryption;

/// <summary>Hands out queued keys, to stage races such as a key being retired between lookup and use.</summary>
internal sealed class StubDataKeyProvider : IDataKeyProvider
{
    public Queue<EncryptionKey> EncryptionKeys { get; } = new();

    public Queue<DataKey> DecryptionKeys { get; } = new();

    public ValueTask<EncryptionKey> GetEncryptionKeyAsync(CancellationToken cancellationToken) =>
        new(EncryptionKeys.Count > 1 ? EncryptionKeys.Dequeue() : EncryptionKeys.Peek());

    public ValueTask<DataKey> GetDecryptionKeyAsync(EnvelopeHeader header, CancellationToken cancellationToken) =>
        new(DecryptionKeys.Count > 1 ? DecryptionKeys.Dequeue() : DecryptionKeys.Peek());
}
