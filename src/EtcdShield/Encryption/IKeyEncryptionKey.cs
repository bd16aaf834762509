namespace EtcdShield.Encryption;

/// <summary>
/// A key-encryption key (KEK): wraps and unwraps data keys. It may live in a file (development), an HSM via
/// PKCS#11, or a KMS. Implementations must be thread-safe and must never put key material in exception messages.
/// </summary>
internal interface IKeyEncryptionKey
{
    /// <summary>
    /// The id written into every envelope whose data key this KEK wrapped, e.g. "file:1a2b3c4d5e6f7a8b",
    /// "pkcs11:&lt;label&gt;" or "kms:&lt;key id&gt;": 1..255 characters of printable ASCII without spaces. It must
    /// stay stable for the KEK's lifetime, since values are found their KEK by it.
    /// </summary>
    string Id { get; }

    /// <exception cref="KeyProviderUnavailableException">The provider cannot be reached or refused the operation.</exception>
    ValueTask<byte[]> WrapAsync(ReadOnlyMemory<byte> dek, CancellationToken cancellationToken);

    /// <exception cref="KeyUnwrapException">The bytes are not a data key wrapped by this KEK.</exception>
    /// <exception cref="KeyProviderUnavailableException">The provider cannot be reached or refused the operation.</exception>
    ValueTask<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrappedDek, CancellationToken cancellationToken);
}
