using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>
/// What a cached data key is found by: its id, which the unwrapped key was checked to derive, and the KEK id and
/// wrapped bytes the KEK vouched for. Keying on the whole wrapping means a second wrapping of a known data key
/// (which a forger can sometimes make unwrap, e.g. through a lenient KMS plugin) gets an entry of its own and never
/// replaces, or is mistaken for, the one genuine envelopes carry.
/// </summary>
internal sealed class DataKeyWrapping
{
    private readonly byte[] _kekId;
    private readonly byte[] _wrappedKey;

    public DataKeyWrapping(DataKeyId id, ReadOnlySpan<byte> kekId, ReadOnlySpan<byte> wrappedKey)
    {
        Id = id;
        _kekId = kekId.ToArray();
        _wrappedKey = wrappedKey.ToArray();
        PrecomputedHash = Hash(id, kekId, wrappedKey);
    }

    public DataKeyId Id { get; }

    public int PrecomputedHash { get; }

    public static DataKeyWrapping Of(DataKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new DataKeyWrapping(key.Id, System.Text.Encoding.ASCII.GetBytes(key.KekId), key.WrappedKey);
    }

    public bool Matches(DataKeyId id, ReadOnlySpan<byte> kekId, ReadOnlySpan<byte> wrappedKey) =>
        Id == id && _kekId.AsSpan().SequenceEqual(kekId) && _wrappedKey.AsSpan().SequenceEqual(wrappedKey);

    /// <summary>
    /// Over every byte, with <see cref="HashCode"/>'s per-process random seed, so someone choosing wrapped
    /// bytes cannot pile entries into one bucket.
    /// </summary>
    public static int Hash(DataKeyId id, ReadOnlySpan<byte> kekId, ReadOnlySpan<byte> wrappedKey)
    {
        HashCode hash = default;
        hash.Add(id);
        hash.AddBytes(kekId);
        hash.AddBytes(wrappedKey);
        return hash.ToHashCode();
    }

    /// <summary>An envelope's wrapping, looked up without copying it out of the stored value.</summary>
    public readonly ref struct Lookup(DataKeyId id, ReadOnlySpan<byte> kekId, ReadOnlySpan<byte> wrappedKey)
    {
        public DataKeyId Id { get; } = id;

        public ReadOnlySpan<byte> KekId { get; } = kekId;

        public ReadOnlySpan<byte> WrappedKey { get; } = wrappedKey;
    }

    public sealed class Comparer : IEqualityComparer<DataKeyWrapping>, IAlternateEqualityComparer<Lookup, DataKeyWrapping>
    {
        public static Comparer Instance { get; } = new();

        public bool Equals(DataKeyWrapping? x, DataKeyWrapping? y) =>
            ReferenceEquals(x, y) || (x is not null && y is not null && x.PrecomputedHash == y.PrecomputedHash && x.Matches(y.Id, y._kekId, y._wrappedKey));

        public int GetHashCode(DataKeyWrapping obj) => obj.PrecomputedHash;

        public bool Equals(Lookup alternate, DataKeyWrapping other) => other.Matches(alternate.Id, alternate.KekId, alternate.WrappedKey);

        public int GetHashCode(Lookup alternate) => Hash(alternate.Id, alternate.KekId, alternate.WrappedKey);

        public DataKeyWrapping Create(Lookup alternate) => new(alternate.Id, alternate.KekId, alternate.WrappedKey);
    }
}
