using Google.Protobuf;

namespace EtcdShield.Encryption;

/// <summary>For <c>--no-encryption</c>: values pass through untouched in both directions.</summary>
internal sealed class PassthroughValueProtector : IValueProtector
{
    public static PassthroughValueProtector Instance { get; } = new();

    public bool Enabled => false;

    public bool AppliesTo(ReadOnlySpan<byte> etcdKey) => false;

    public bool Binds(ReadOnlySpan<byte> etcdKey) => false;

    public ValueTask<ByteString> ProtectAsync(ByteString etcdKey, ByteString plaintext, KeyPlace? place, CancellationToken cancellationToken) =>
        new(plaintext);

    public ValueTask<ByteString> UnprotectAsync(ByteString etcdKey, ByteString stored, KeyPlace place, CancellationToken cancellationToken) =>
        new(stored);
}
