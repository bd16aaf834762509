using EtcdShield.Tls;

namespace EtcdShield.Authorization;

/// <summary>
/// One identity of the policy: which certificates it stands for, which methods it may call that do not name keys
/// (Maintenance, Cluster, Lease, Auth, KV/Compact), and which key ranges it may read or write.
/// </summary>
internal sealed class PolicyIdentity
{
    private readonly HashSet<string> _methods;

    /// <param name="methods">Full method names (<c>Maintenance/Snapshot</c>), already expanded from services and '*'.</param>
    public PolicyIdentity(string name, IdentityMatch match, IEnumerable<string> methods, KeyGrants keys)
    {
        Name = name;
        Match = match;
        _methods = new HashSet<string>(methods, StringComparer.Ordinal);
        Keys = keys;
    }

    /// <summary>The name decisions, metrics and the audit log use: the policy's own, not a certificate field.</summary>
    public string Name { get; }

    public IdentityMatch Match { get; }

    public KeyGrants Keys { get; }

    public IReadOnlyCollection<string> Methods => _methods;

    public bool MayCall(string method) => _methods.Contains(method);

    public bool Matches(ClientIdentity identity) => Match.Matches(identity);
}
