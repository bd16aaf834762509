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

    /// <summary>Whether values of this key are bound to their place in its history (<c>--rollback-protection-prefix</c>).</summary>
    bool Binds(ReadOnlySpan<byte> etcdKey);

    /// <summary>The value to store for <paramref name="etcdKey"/>: an envelope, or the plaintext if the key is not encrypted.</summary>
    /// <param name="place">
    /// Where the write puts the value in the key's history; required where <see cref="Binds"/> (the write must then be
    /// committed only while that holds), ignored elsewhere.
    /// </param>
    /// <exception cref="Grpc.Core.RpcException">UNAVAILABLE when the KEK is unreachable; RESOURCE_EXHAUSTED when the envelope would be too large.</exception>
    ValueTask<ByteString> ProtectAsync(ByteString etcdKey, ByteString plaintext, KeyPlace? place, CancellationToken cancellationToken);

    /// <summary>The value to return to the client for a stored value of <paramref name="etcdKey"/>, found at <paramref name="place"/>.</summary>
    /// <exception cref="Grpc.Core.RpcException">
    /// DATA_LOSS when the value cannot be authenticated, is unencrypted, or was sealed for another place; UNAVAILABLE when
    /// the KEK is unreachable.
    /// </exception>
    ValueTask<ByteString> UnprotectAsync(ByteString etcdKey, ByteString stored, KeyPlace place, CancellationToken cancellationToken);
}
