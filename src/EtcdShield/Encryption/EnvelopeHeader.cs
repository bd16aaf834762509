namespace EtcdShield.Encryption;

/// <summary>
/// The parsed header of an envelope. A ref struct of slices into the stored value, so parsing allocates nothing;
/// produced only by <see cref="ValueEnvelope.Parse"/>, which has checked every length against the value.
/// </summary>
internal readonly ref struct EnvelopeHeader
{
    internal EnvelopeHeader(
        ReadOnlySpan<byte> bytes,
        byte version,
        ReadOnlySpan<byte> keyId,
        ReadOnlySpan<byte> kekId,
        ReadOnlySpan<byte> wrappedKey,
        ReadOnlySpan<byte> place,
        ReadOnlySpan<byte> nonce,
        int ciphertextLength)
    {
        Bytes = bytes;
        Version = version;
        KeyId = keyId;
        KekId = kekId;
        WrappedKey = wrappedKey;
        PlaceBytes = place;
        Nonce = nonce;
        CiphertextLength = ciphertextLength;
    }

    /// <summary>Magic through nonce: the first part of the associated data.</summary>
    public ReadOnlySpan<byte> Bytes { get; }

    public byte Version { get; }

    /// <summary>The 16-byte id of the data key that sealed the value.</summary>
    public ReadOnlySpan<byte> KeyId { get; }

    /// <summary>The id of the key-encryption key that wrapped the data key, as printable ASCII bytes.</summary>
    public ReadOnlySpan<byte> KekId { get; }

    public ReadOnlySpan<byte> WrappedKey { get; }

    /// <summary>A v2 envelope's bound create revision and version; empty in v1.</summary>
    public ReadOnlySpan<byte> PlaceBytes { get; }

    /// <summary>Where a v2 envelope was written in its key's history; null for v1, which is bound to its key only.</summary>
    public KeyPlace? Place => PlaceBytes.IsEmpty
        ? null
        : new KeyPlace(System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(PlaceBytes), System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(PlaceBytes[8..]));

    public ReadOnlySpan<byte> Nonce { get; }

    /// <summary>Length of the ciphertext between the header and the tag, which equals the plaintext length.</summary>
    public int CiphertextLength { get; }

    public int Length => Bytes.Length;

    public DataKeyId DataKeyId => DataKeyId.Read(KeyId);

    public string GetKekIdString() => System.Text.Encoding.ASCII.GetString(KekId);
}
