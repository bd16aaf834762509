using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;

namespace EtcdShield.Encryption;

/// <summary>
/// Envelopes v1 and v2: the self-contained encrypted form of an etcd value (see docs/value-format.md).
/// <code>
/// "ESH" 0x01 | u8 16 | key id (16) | u8 n | KEK id (n) | u16be m | wrapped DEK (m) | nonce (12) | ciphertext | tag (16)
/// "ESH" 0x02 | u8 16 | key id (16) | u8 n | KEK id (n) | u16be m | wrapped DEK (m) | u64be create revision | u64be version | nonce (12) | ciphertext | tag (16)
/// </code>
/// The associated data is the header (magic through nonce) followed by the etcd key, so a value is bound to its
/// key, its data key and its wrapping; v2 (rollback protection) also to its place in the key's history.
/// </summary>
internal static class ValueEnvelope
{
    public const byte Version1 = 0x01;

    /// <summary>Rollback-protected: the header also carries the <see cref="KeyPlace"/> the value was written at.</summary>
    public const byte Version2 = 0x02;

    /// <summary>A v2 header's create revision and version, big-endian.</summary>
    public const int PlaceLength = 16;
    public const int MagicLength = 3;
    public const int KeyIdLength = DataKeyId.Length;
    public const int MaxKekIdLength = byte.MaxValue;
    public const int MaxWrappedKeyLength = ushort.MaxValue;
    public const int NonceSize = 12;
    public const int TagSize = AesGcmPool.TagSize;

    /// <summary>Offset of the KEK id bytes (after magic, version, key id length, key id and KEK id length).</summary>
    public const int KekIdOffset = MagicLength + 1 + 1 + KeyIdLength + 1;

    /// <summary>The smallest well-formed envelope: one-byte KEK id, one-byte wrapped key, empty plaintext.</summary>
    public const int MinimumLength = KekIdOffset + 1 + 2 + 1 + NonceSize + TagSize;

    // AAD up to this size is assembled on the stack; larger (long etcd keys or KMS blobs) comes from the array pool.
    private const int StackAadLimit = 1024;

    public static ReadOnlySpan<byte> Magic => "ESH"u8;

    /// <summary>Bytes an envelope adds to a plaintext for a given KEK id and wrapped key length.</summary>
    public static int Overhead(int kekIdLength, int wrappedKeyLength) =>
        HeaderLength(kekIdLength, wrappedKeyLength) + TagSize;

    public static int HeaderLength(int kekIdLength, int wrappedKeyLength) =>
        KekIdOffset + kekIdLength + 2 + wrappedKeyLength + NonceSize;

    /// <param name="bound">Whether the envelope is v2, bound to a <see cref="KeyPlace"/>.</param>
    /// <exception cref="OverflowException">The envelope would not fit in an array.</exception>
    public static int SealedLength(EncryptionKey key, int plaintextLength, bool bound = false)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentOutOfRangeException.ThrowIfNegative(plaintextLength);
        return checked(key.DataKey.HeaderLength + (bound ? PlaceLength : 0) + plaintextLength + TagSize);
    }

    /// <summary>
    /// Whether the value claims to be an envelope: "ESH" followed by any version byte. Such a value is never
    /// treated as plaintext, so a corrupted or future-version envelope fails closed instead of leaking through.
    /// </summary>
    public static bool HasEnvelopePrefix(ReadOnlySpan<byte> value) =>
        value.Length > MagicLength && value.StartsWith(Magic);

    /// <summary>Validates the structure (not the authenticity) of an envelope and slices its header.</summary>
    /// <exception cref="EnvelopeFormatException">Not a structurally valid v1 or v2 envelope.</exception>
    public static EnvelopeHeader Parse(ReadOnlySpan<byte> value) => Read(value).Over(value);

    /// <summary>
    /// Validates the structure (not the authenticity) of an envelope once, for a reader that looks up its key
    /// (an await) before it opens it: the layout outlives the span, so the header is not parsed twice.
    /// </summary>
    /// <exception cref="EnvelopeFormatException">Not a structurally valid v1 envelope.</exception>
    public static EnvelopeLayout Read(ReadOnlySpan<byte> value)
    {
        // Messages name the structural problem only: the offending bytes may be someone's plaintext.
        if (!HasEnvelopePrefix(value))
        {
            throw Malformed("the value does not start with the envelope magic");
        }

        byte version = value[MagicLength];
        if (version is not (Version1 or Version2))
        {
            throw new EnvelopeFormatException(
                EnvelopeErrorReason.UnsupportedVersion,
                "unsupported envelope version (written by a newer EtcdShield?)");
        }

        int placeLength = version == Version2 ? PlaceLength : 0;
        if (value.Length < MinimumLength + placeLength)
        {
            throw Malformed("the envelope is truncated");
        }

        int offset = MagicLength + 1;
        if (value[offset] != KeyIdLength)
        {
            throw Malformed("the key id length is not 16");
        }

        offset += 1 + KeyIdLength;
        int kekIdLength = value[offset];
        offset++;
        if (kekIdLength == 0)
        {
            throw Malformed("the KEK id is empty");
        }

        if (value.Length - offset < kekIdLength + 2)
        {
            throw Malformed("the envelope is truncated");
        }

        ReadOnlySpan<byte> kekId = value.Slice(offset, kekIdLength);
        if (!IsValidKekId(kekId))
        {
            throw Malformed("the KEK id is not printable ASCII");
        }

        offset += kekIdLength;
        int wrappedKeyLength = BinaryPrimitives.ReadUInt16BigEndian(value[offset..]);
        offset += 2;
        if (wrappedKeyLength == 0)
        {
            throw Malformed("the wrapped data key is empty");
        }

        if (value.Length - offset < wrappedKeyLength + placeLength + NonceSize + TagSize)
        {
            throw Malformed("the envelope is truncated");
        }

        if (version == Version2)
        {
            var place = value.Slice(offset + wrappedKeyLength, PlaceLength);
            // etcd's revisions and versions are positive int64s; 0 as a create revision means "created by this write".
            if (BinaryPrimitives.ReadInt64BigEndian(place) < 0 || BinaryPrimitives.ReadInt64BigEndian(place[8..]) <= 0)
            {
                throw Malformed("the bound place is out of range");
            }
        }

        return new EnvelopeLayout(version, kekIdLength, wrappedKeyLength, value.Length);
    }

    /// <summary>Seals <paramref name="plaintext"/> for <paramref name="etcdKey"/> (and, given one, for its <paramref name="place"/>).</summary>
    /// <exception cref="InvalidOperationException">The key reached its write limit; get a fresh key.</exception>
    /// <exception cref="ObjectDisposedException">The key was retired and disposed; get a fresh key.</exception>
    public static byte[] Seal(EncryptionKey key, ReadOnlySpan<byte> etcdKey, ReadOnlySpan<byte> plaintext, KeyPlace? place = null)
    {
        if (!TrySeal(key, etcdKey, plaintext, out byte[]? envelope, place))
        {
            throw new InvalidOperationException("The data key reached its write limit; a new data key is needed.");
        }

        return envelope;
    }

    /// <summary>Like <see cref="Seal"/> but returns false instead of throwing when the key's write limit is reached.</summary>
    /// <param name="place">Where the value will sit in its key's history (a v2 envelope), or null for a v1 envelope.</param>
    public static bool TrySeal(
        EncryptionKey key,
        ReadOnlySpan<byte> etcdKey,
        ReadOnlySpan<byte> plaintext,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? envelope,
        KeyPlace? place = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        DataKey dataKey = key.DataKey;
        ReadOnlySpan<byte> prefix = dataKey.HeaderPrefix;
        int placeLength = place is null ? 0 : PlaceLength;
        int headerLength = prefix.Length + placeLength + NonceSize;
        byte[] output = GC.AllocateUninitializedArray<byte>(SealedLength(key, plaintext.Length, place is not null));
        Span<byte> nonce = output.AsSpan(prefix.Length + placeLength, NonceSize);
        if (!key.TryReserveNonce(nonce))
        {
            envelope = null;
            return false;
        }

        prefix.CopyTo(output);
        if (place is { } bound)
        {
            output[MagicLength] = Version2;
            BinaryPrimitives.WriteInt64BigEndian(output.AsSpan(prefix.Length), bound.CreateRevision);
            BinaryPrimitives.WriteInt64BigEndian(output.AsSpan(prefix.Length + 8), bound.Version);
        }

        Encrypt(dataKey, output.AsSpan(0, headerLength), etcdKey, plaintext, output.AsSpan(headerLength));
        envelope = output;
        return true;
    }

    /// <summary>Authenticates and decrypts an envelope read from <paramref name="etcdKey"/>.</summary>
    /// <exception cref="EnvelopeFormatException">Not a structurally valid v1 envelope.</exception>
    /// <exception cref="EnvelopeAuthenticationException">Sealed under another key, for another etcd key, or modified.</exception>
    /// <exception cref="ObjectDisposedException">The key was evicted and disposed; look it up again.</exception>
    public static byte[] Open(DataKey key, ReadOnlySpan<byte> etcdKey, ReadOnlySpan<byte> value) => Open(key, etcdKey, value, Read(value));

    /// <summary>Authenticates and decrypts an envelope whose structure <see cref="Read"/> validated into <paramref name="layout"/>.</summary>
    /// <exception cref="EnvelopeAuthenticationException">Sealed under another key, for another etcd key, or modified.</exception>
    /// <exception cref="ObjectDisposedException">The key was evicted and disposed; look it up again.</exception>
    public static byte[] Open(DataKey key, ReadOnlySpan<byte> etcdKey, ReadOnlySpan<byte> value, EnvelopeLayout layout)
    {
        ArgumentNullException.ThrowIfNull(key);
        EnvelopeHeader header = layout.Over(value);
        if (!CryptographicOperations.FixedTimeEquals(header.KeyId, key.IdBytes))
        {
            throw new EnvelopeAuthenticationException("the value was sealed under a different data key");
        }

        ReadOnlySpan<byte> ciphertext = value.Slice(header.Length, header.CiphertextLength);
        ReadOnlySpan<byte> tag = value[^TagSize..];
        byte[] plaintext = ciphertext.IsEmpty ? [] : GC.AllocateUninitializedArray<byte>(ciphertext.Length);
        int aadLength = checked(header.Length + etcdKey.Length);
        byte[]? rented = null;
        Span<byte> aad = aadLength <= StackAadLimit
            ? stackalloc byte[aadLength]
            : (rented = ArrayPool<byte>.Shared.Rent(aadLength)).AsSpan(0, aadLength);
        header.Bytes.CopyTo(aad);
        etcdKey.CopyTo(aad[header.Length..]);

        AesGcm cipher = key.RentCipher();
        try
        {
            cipher.Decrypt(header.Nonce, ciphertext, tag, plaintext, aad);
        }
        catch (AuthenticationTagMismatchException ex)
        {
            throw new EnvelopeAuthenticationException("authentication failed", ex);
        }
        finally
        {
            key.ReturnCipher(cipher);
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }

        return plaintext;
    }

    /// <summary>KEK ids are 1..255 bytes of printable, space-free ASCII so they read unambiguously in logs.</summary>
    public static bool IsValidKekId(ReadOnlySpan<byte> kekId)
    {
        if (kekId.IsEmpty || kekId.Length > MaxKekIdLength)
        {
            return false;
        }

        foreach (byte b in kekId)
        {
            if (b is < 0x21 or > 0x7E)
            {
                return false;
            }
        }

        return true;
    }

    public static bool IsValidKekId(string? kekId)
    {
        if (string.IsNullOrEmpty(kekId) || kekId.Length > MaxKekIdLength)
        {
            return false;
        }

        foreach (char c in kekId)
        {
            if (c is < '\x21' or > '\x7E')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Everything but the nonce, computed once per data key so sealing only copies it.</summary>
    internal static byte[] CreateHeaderPrefix(DataKeyId keyId, string kekId, ReadOnlySpan<byte> wrappedKey, out int wrappedKeyOffset)
    {
        if (!IsValidKekId(kekId))
        {
            throw new ArgumentException(
                $"A KEK id must be 1..{MaxKekIdLength} characters of printable ASCII without spaces.",
                nameof(kekId));
        }

        if (wrappedKey.Length is 0 or > MaxWrappedKeyLength)
        {
            throw new ArgumentException(
                $"A wrapped data key must be 1..{MaxWrappedKeyLength} bytes.",
                nameof(wrappedKey));
        }

        byte[] prefix = new byte[HeaderLength(kekId.Length, wrappedKey.Length) - NonceSize];
        Span<byte> span = prefix;
        Magic.CopyTo(span);
        span[MagicLength] = Version1;
        span[MagicLength + 1] = KeyIdLength;
        keyId.CopyTo(span[(MagicLength + 2)..]);
        span[KekIdOffset - 1] = (byte)kekId.Length;
        int offset = KekIdOffset + System.Text.Encoding.ASCII.GetBytes(kekId, span[KekIdOffset..]);
        BinaryPrimitives.WriteUInt16BigEndian(span[offset..], (ushort)wrappedKey.Length);
        wrappedKeyOffset = offset + 2;
        wrappedKey.CopyTo(span[wrappedKeyOffset..]);
        return prefix;
    }

    private static void Encrypt(
        DataKey key,
        ReadOnlySpan<byte> header,
        ReadOnlySpan<byte> etcdKey,
        ReadOnlySpan<byte> plaintext,
        Span<byte> destination)
    {
        int aadLength = checked(header.Length + etcdKey.Length);
        byte[]? rented = null;
        Span<byte> aad = aadLength <= StackAadLimit
            ? stackalloc byte[aadLength]
            : (rented = ArrayPool<byte>.Shared.Rent(aadLength)).AsSpan(0, aadLength);
        header.CopyTo(aad);
        etcdKey.CopyTo(aad[header.Length..]);

        AesGcm cipher = key.RentCipher();
        try
        {
            cipher.Encrypt(
                header[^NonceSize..],
                plaintext,
                destination[..plaintext.Length],
                destination.Slice(plaintext.Length, TagSize),
                aad);
        }
        finally
        {
            key.ReturnCipher(cipher);
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static EnvelopeFormatException Malformed(string detail) =>
        new(EnvelopeErrorReason.Malformed, "malformed envelope: " + detail);
}
