using EtcdShield.Encryption;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// A KEK that never leaves the HSM: an AES-256 key in a PKCS#11 token, found by its label. Wrapping is RFC 5649
/// AES key wrap with padding done by the token (CKM_AES_KEY_WRAP_PAD), so a 32-byte data key becomes 40 bytes,
/// the same shape as the file KEK's. The id is "pkcs11:" plus the label (see <see cref="Pkcs11KeyLabel"/>), so any
/// proxy with the token can find the KEK of any value.
/// </summary>
internal sealed class Pkcs11KeyEncryptionKey : IKeyEncryptionKey
{
    private readonly Pkcs11KeyStore _store;

    public Pkcs11KeyEncryptionKey(Pkcs11KeyStore store, string label)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentException.ThrowIfNullOrEmpty(label);
        _store = store;
        Label = label;
        Id = Pkcs11KeyLabel.ToKekId(label);
    }

    public string Id { get; }

    /// <summary>The key's CKA_LABEL in the token.</summary>
    public string Label { get; }

    public ValueTask<byte[]> WrapAsync(ReadOnlyMemory<byte> dek, CancellationToken cancellationToken)
    {
        if (dek.IsEmpty)
        {
            throw new ArgumentException("There is no data key to wrap.", nameof(dek));
        }

        return new ValueTask<byte[]>(_store.WrapAsync(Label, dek, cancellationToken));
    }

    public ValueTask<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrappedDek, CancellationToken cancellationToken) =>
        new(_store.UnwrapAsync(Label, Id, wrappedDek, cancellationToken));

    public override string ToString() => Id;
}
