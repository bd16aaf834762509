namespace EtcdShield.Encryption;

/// <summary>Supplies data keys to the value protector. Both methods complete synchronously when the key is at hand.</summary>
internal interface IDataKeyProvider
{
    /// <summary>The data key to seal new values with; creates and wraps a new one when due.</summary>
    /// <exception cref="KeyProviderUnavailableException">No usable key and the KEK cannot make one.</exception>
    ValueTask<EncryptionKey> GetEncryptionKeyAsync(CancellationToken cancellationToken);

    /// <summary>The data key an envelope names, unwrapped with the KEK the envelope names if not cached.</summary>
    /// <exception cref="EnvelopeException">Unknown KEK, KEK unavailable, or the header's key material does not belong together.</exception>
    ValueTask<DataKey> GetDecryptionKeyAsync(EnvelopeHeader header, CancellationToken cancellationToken);
}
