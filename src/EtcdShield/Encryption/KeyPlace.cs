using EtcdShield.Protocol.Mvccpb;

namespace EtcdShield.Encryption;

/// <summary>
/// Where a value sits in its key's history, as etcd reports it with every key-value: the revision that created the
/// key's current lifetime and the key's version in it. Envelope v2 binds both (docs/value-format.md), so a value
/// put back at another version, or into another lifetime of the key, no longer authenticates.
/// </summary>
/// <remarks>
/// A write that creates the key cannot know the revision etcd will create it at (it is the write's own), so
/// version 1 is bound with create revision 0, "created by this write"; every later version binds the real one.
/// </remarks>
internal readonly record struct KeyPlace(long CreateRevision, long Version)
{
    /// <summary>The place of a value that creates its key.</summary>
    public static KeyPlace Creating { get; } = new(0, 1);

    /// <summary>The place of the value <paramref name="kv"/> holds.</summary>
    public static KeyPlace Of(KeyValue kv)
    {
        ArgumentNullException.ThrowIfNull(kv);
        return kv.Version == 1 ? Creating : new KeyPlace(kv.CreateRevision, kv.Version);
    }

    /// <summary>The place of the next value written over <paramref name="current"/> (null: the key does not exist).</summary>
    public static KeyPlace After(KeyValue? current) =>
        current is null || current.Version == 0 ? Creating : new KeyPlace(current.CreateRevision, current.Version + 1);

    public override string ToString() =>
        CreateRevision == 0
            ? $"version {Version} of a lifetime it created"
            : $"version {Version} of the lifetime created at revision {CreateRevision}";
}
