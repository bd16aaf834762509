using Google.Protobuf;

namespace EtcdShield.ReadCache;

/// <summary>
/// Equality of keys and requests by their bytes, hashed with the process's random seed: ByteString's own hash is a
/// fixed function of the bytes, so a client could choose many keys of one hash and make every lookup walk them all.
/// </summary>
internal sealed class KeyBytesComparer : IEqualityComparer<ByteString>
{
    public static readonly KeyBytesComparer Instance = new();

    public bool Equals(ByteString? x, ByteString? y) =>
        ReferenceEquals(x, y) || (x is not null && y is not null && x.Span.SequenceEqual(y.Span));

    public int GetHashCode(ByteString obj)
    {
        var hash = new HashCode();
        hash.AddBytes(obj.Span);
        return hash.ToHashCode();
    }
}
