using EtcdShield.Api;

namespace EtcdShield.Authorization;

/// <summary>
/// Method names as a policy writes them: <c>Service/Method</c>, a whole service (<c>Maintenance</c>), or '*'.
/// Checked against the API the proxy serves, so a typo is an error when the policy loads, not a silent denial.
/// </summary>
internal static class MethodNames
{
    public static readonly IReadOnlyList<string> All = EtcdApi.ShortNames;

    /// <summary>
    /// Methods whose permission comes from key grants alone: each names keys, and the keys decide. Listing them
    /// under methods would suggest a grant that does not exist, so the policy refuses it.
    /// </summary>
    public static readonly IReadOnlySet<string> GovernedByKeys = new HashSet<string>(StringComparer.Ordinal)
    {
        "KV/Range", "KV/Put", "KV/DeleteRange", "KV/Txn", "Watch/Watch",
        "Lock/Lock", "Lock/Unlock",
        "Election/Campaign", "Election/Proclaim", "Election/Leader", "Election/Observe", "Election/Resign",
    };

    /// <summary>
    /// The short form of an entry: gRPC's full names (<c>/etcdserverpb.Maintenance/Snapshot</c>, as they appear
    /// in etcd's logs and in gRPC tooling) name the same methods as <c>Maintenance/Snapshot</c>.
    /// </summary>
    public static string Normalize(string entry)
    {
        var name = entry.Trim().TrimStart('/');
        foreach (var package in (string[])["etcdserverpb.", "v3lockpb.", "v3electionpb."])
        {
            if (name.StartsWith(package, StringComparison.Ordinal))
            {
                return name[package.Length..];
            }
        }

        return name;
    }

    /// <summary>
    /// The methods '*' and a whole service's name grant: those that only read the cluster's state without
    /// exporting the store, and the caller's own leases. Everything else that names no keys changes the cluster
    /// (members, leadership, compaction, defragmentation, alarms, downgrade), its auth (the whole Auth service:
    /// a root user and AuthEnable lock every client and the proxy out), or reads the whole store (Snapshot
    /// exports every ciphertext; Hash and HashKV read all of it), so only its full name grants it. See
    /// docs/policy.md for why each is where it is.
    /// </summary>
    public static readonly IReadOnlySet<string> Unprivileged = new HashSet<string>(StringComparer.Ordinal)
    {
        "Maintenance/Status", "Cluster/MemberList",
        // A lease belongs to the identity that granted it (LeaseTag): these reach only the caller's own.
        "Lease/LeaseGrant", "Lease/LeaseRevoke", "Lease/LeaseKeepAlive", "Lease/LeaseTimeToLive", "Lease/LeaseLeases",
    };

    /// <summary>The methods an entry stands for, leaving out those governed by keys; null when it names nothing.</summary>
    public static IReadOnlyList<string>? Expand(string entry)
    {
        if (entry == "*")
        {
            return All.Where(Unprivileged.Contains).ToList();
        }

        if (entry.Contains('/', StringComparison.Ordinal))
        {
            return All.Contains(entry, StringComparer.Ordinal) ? [entry] : null;
        }

        var service = InService(entry);
        return service.Count == 0 ? null : service.Where(Unprivileged.Contains).ToList();
    }

    /// <summary>The methods of a service that only their full names grant (none when <paramref name="entry"/> is no service).</summary>
    public static IReadOnlyList<string> PrivilegedIn(string entry) =>
        InService(entry).Where(m => !GovernedByKeys.Contains(m) && !Unprivileged.Contains(m)).ToList();

    private static List<string> InService(string service) =>
        All.Where(m => m.StartsWith(service + "/", StringComparison.Ordinal)).ToList();
}
