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
        LeaseTag = Authorization.LeaseTag.Of(name);
        ManagesEveryLease = keys.Everything && MethodNames.All.Where(m => m.StartsWith("Lease/", StringComparison.Ordinal)).All(_methods.Contains);
    }

    /// <summary>The name decisions, metrics and the audit log use: the policy's own, not a certificate field.</summary>
    public string Name { get; }

    public IdentityMatch Match { get; }

    public KeyGrants Keys { get; }

    public IReadOnlyCollection<string> Methods => _methods;

    /// <summary>The tag in the IDs of the leases this identity owns (see <see cref="Authorization.LeaseTag"/>).</summary>
    public int LeaseTag { get; }

    /// <summary>
    /// An identity that may read and write every key and call every Lease method (an administrator, or the
    /// --allow-* shorthand) manages every lease, whoever granted it, and leases created straight in etcd.
    /// </summary>
    public bool ManagesEveryLease { get; }

    public bool MayCall(string method) => _methods.Contains(method);

    public bool Matches(ClientIdentity identity) => Match.Matches(identity);
}
