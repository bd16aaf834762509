namespace EtcdShield.Encryption;

/// <summary>
/// Where the parts of a validated envelope lie, as lengths: what <see cref="ValueEnvelope.Read"/> learnt from
/// checking it, kept across the key lookup so that the envelope is parsed once per value.
/// </summary>
internal readonly record struct EnvelopeLayout(byte Version, int KekIdLength, int WrappedKeyLength, int ValueLength)
{
    // Magic, version, key id length, key id, KEK id length: then the KEK id.
    private const int KekIdOffset = ValueEnvelope.MagicLength + 2 + ValueEnvelope.KeyIdLength + 1;

    private int WrappedKeyOffset => KekIdOffset + KekIdLength + 2;

    private int PlaceLength => Version == ValueEnvelope.Version2 ? ValueEnvelope.PlaceLength : 0;

    private int HeaderLength => WrappedKeyOffset + WrappedKeyLength + PlaceLength + ValueEnvelope.NonceSize;

    /// <summary>The header of <paramref name="value"/>, which must be the value this layout was read from.</summary>
    public EnvelopeHeader Over(ReadOnlySpan<byte> value)
    {
        if (value.Length != ValueLength)
        {
            throw new ArgumentException("the layout was read from another value", nameof(value));
        }

        return new EnvelopeHeader(
            value[..HeaderLength],
            Version,
            value.Slice(ValueEnvelope.MagicLength + 2, ValueEnvelope.KeyIdLength),
            value.Slice(KekIdOffset, KekIdLength),
            value.Slice(WrappedKeyOffset, WrappedKeyLength),
            value.Slice(WrappedKeyOffset + WrappedKeyLength, PlaceLength),
            value.Slice(WrappedKeyOffset + WrappedKeyLength + PlaceLength, ValueEnvelope.NonceSize),
            ValueLength - HeaderLength - ValueEnvelope.TagSize);
    }
}
