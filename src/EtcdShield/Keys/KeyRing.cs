using System.Diagnostics.CodeAnalysis;
using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>
/// The KEKs this proxy knows: the current one wraps new data keys; it and every retired one may unwrap the data
/// keys of values they wrapped. Immutable; KEK rotation swaps in a new ring.
/// </summary>
internal sealed class KeyRing
{
    private readonly Dictionary<string, IKeyEncryptionKey> _byId = new(StringComparer.Ordinal);

    /// <param name="current">Wraps new data keys, and unwraps.</param>
    /// <param name="retired">Only unwrap: keep them configured until every value they wrapped has been rewritten.</param>
    public KeyRing(IKeyEncryptionKey current, params IEnumerable<IKeyEncryptionKey> retired)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(retired);
        Current = current;
        Add(current);
        foreach (IKeyEncryptionKey kek in retired)
        {
            Add(kek);
        }
    }

    public IKeyEncryptionKey Current { get; }

    /// <summary>Asked for ids the ring does not hold (e.g. KEKs created in an HSM after the ring was built).</summary>
    public IKeyEncryptionKeyResolver? Resolver { get; init; }

    public bool TryGet(string kekId, [NotNullWhen(true)] out IKeyEncryptionKey? kek)
    {
        if (_byId.TryGetValue(kekId, out kek))
        {
            return true;
        }

        if (Resolver is not null && Resolver.TryResolve(kekId, out kek))
        {
            return true;
        }

        kek = null;
        return false;
    }

    private void Add(IKeyEncryptionKey kek)
    {
        ArgumentNullException.ThrowIfNull(kek);
        string id = kek.Id;
        if (!ValueEnvelope.IsValidKekId(id))
        {
            throw new ArgumentException(
                $"Key encryption key id \"{id}\" is not usable in envelopes: it must be 1..{ValueEnvelope.MaxKekIdLength} characters of printable ASCII without spaces.",
                nameof(kek));
        }

        if (_byId.TryGetValue(id, out IKeyEncryptionKey? existing))
        {
            if (!ReferenceEquals(existing, kek))
            {
                throw new ArgumentException(
                    $"Two configured key encryption keys have the id \"{id}\"; each KEK needs a distinct id, or values could not find the KEK that wrapped them.",
                    nameof(kek));
            }

            return;
        }

        _byId.Add(id, kek);
    }
}
