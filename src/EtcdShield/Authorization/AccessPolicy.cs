using EtcdShield.Configuration;
using EtcdShield.Tls;

namespace EtcdShield.Authorization;

/// <summary>
/// Who may connect and what each may do. A client certificate is admitted when some identity matches it; the
/// first matching identity, in the order of the policy, decides every request of that client. Nothing that is
/// not granted is allowed.
/// </summary>
internal sealed class AccessPolicy
{
    /// <exception cref="ConfigurationException">Two identities share a lease tag, so each would own the other's leases.</exception>
    public AccessPolicy(IReadOnlyList<PolicyIdentity> identities, string source)
    {
        var tags = new Dictionary<int, string>();
        foreach (var identity in identities)
        {
            if (!tags.TryAdd(identity.LeaseTag, identity.Name))
            {
                throw new ConfigurationException(
                    $"identities '{tags[identity.LeaseTag]}' and '{identity.Name}' have the same lease tag ({identity.LeaseTag:x6}), so each would own the other's leases: rename one of them");
            }
        }

        Identities = identities;
        Source = source;
    }

    public IReadOnlyList<PolicyIdentity> Identities { get; }

    /// <summary>Where the policy came from, for logs: the file, or the --allow-* flags.</summary>
    public string Source { get; }

    public PolicyIdentity? Resolve(ClientIdentity identity)
    {
        foreach (var candidate in Identities)
        {
            if (candidate.Matches(identity))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>
    /// The --allow-cn/--allow-dns/--allow-uri shorthand: each value is an identity with every method and every key,
    /// which is what the flags meant before policies existed. Unlike '*' in a policy file, this is an administrator:
    /// Auth, Snapshot, Member*, Defragment and every lease included.
    /// </summary>
    public static IReadOnlyList<PolicyIdentity> FromAllowFlags(IReadOnlyList<string> commonNames, IReadOnlyList<string> dnsNames, IReadOnlyList<string> uriPatterns)
    {
        var everyMethod = MethodNames.All;
        var identities = new List<PolicyIdentity>();
        identities.AddRange(commonNames.Select(cn => new PolicyIdentity($"cn:{cn}", new IdentityMatch([cn], [], [], [], []), everyMethod, KeyGrants.All)));
        identities.AddRange(dnsNames.Select(dns => new PolicyIdentity($"dns:{dns}", new IdentityMatch([], [dns], [], [], []), everyMethod, KeyGrants.All)));
        identities.AddRange(uriPatterns.Select(uri => new PolicyIdentity($"uri:{uri}", new IdentityMatch([], [], [uri], [], []), everyMethod, KeyGrants.All)));
        return identities;
    }
}
