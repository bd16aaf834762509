using System.Buffers.Binary;
using System.Security.Cryptography;

namespace EtcdShield.Encryption;

/// <summary>
/// The public 16-byte name of a data key: the first 16 bytes of HMAC-SHA256(DEK, "EtcdShield DEK id v1").
/// A value type so that looking up the key named by an envelope allocates nothing.
/// </summary>
internal readonly struct DataKeyId : IEquatable<DataKeyId>
{
    public const int Length = 16;

    private readonly ulong _high;
    private readonly ulong _low;

    private DataKeyId(ulong high, ulong low)
    {
        _high = high;
        _low = low;
    }

    private static ReadOnlySpan<byte> DerivationLabel => "EtcdShield DEK id v1"u8;

    /// <summary>
    /// Derives the id from the key bytes. HMAC is a PRF, so publishing the id reveals nothing about the key, and
    /// finding a second key with the same id costs a 128-bit collision: storing the id in the authenticated header
    /// commits each value to exactly one key, which AES-GCM alone does not.
    /// </summary>
    public static DataKeyId Derive(ReadOnlySpan<byte> dataKey)
    {
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(dataKey, DerivationLabel, mac);
        return Read(mac[..Length]);
    }

    public static DataKeyId Read(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length)
        {
            throw new ArgumentException($"A data key id is {Length} bytes.", nameof(bytes));
        }

        return new DataKeyId(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
    }

    public void CopyTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _high);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _low);
    }

    public byte[] ToArray()
    {
        byte[] bytes = new byte[Length];
        CopyTo(bytes);
        return bytes;
    }

    public bool Equals(DataKeyId other) => _high == other._high && _low == other._low;

    public override bool Equals(object? obj) => obj is DataKeyId other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(_high, _low);

    /// <summary>Lower-case hex, as written in logs and docs.</summary>
    public override string ToString() => $"{_high:x16}{_low:x16}";

    public static bool operator ==(DataKeyId left, DataKeyId right) => left.Equals(right);

    public static bool operator !=(DataKeyId left, DataKeyId right) => !left.Equals(right);
}
