using Google.Protobuf;

namespace EtcdShield.Encryption;

/// <summary>
/// What the gRPC relay calls for every value it forwards. Failures surface as <see cref="Grpc.Core.RpcException"/>
/// with messages that name the etcd key but never contain value bytes or key material.
/// </summary>
internal interface IValueProtector
{
    /// <summary>False when the proxy runs with <c>--no-encryption</c>.</summary>
    bool Enabled { get; }

    /// <summary>Whether values of this key are encrypted.</summary>
    bool AppliesTo(ReadOnlySpan<byte> etcdKey);

    /// <summary>The value to store for <paramref name="etcdKey"/>: an envelope, or the plaintext if the key is not encrypted.</summary>
    /// <exception cref="Grpc.Core.RpcException">UNAVAILABLE when the KEK is unreachable; RESOURCE_EXHAUSTED when the envelope would be too large.</exception>
    ValueTask<ByteString> ProtectAsync(ByteString etcdKey, ByteString plaintext, CancellationToken cancellationToken);

    /// <summary>The value to return to the client for a stored value of <paramref name="etcdKey"/>.</summary>
    /// <exception cref="Grpc.Core.RpcException">DATA_LOSS when the value cannot be authenticated or is unencrypted; UNAVAILABLE when the KEK is unreachable.</exception>
    ValueTask<ByteString> UnprotectAsync(ByteString etcdKey, ByteString stored, CancellationToken cancellationToken);
}
