using EtcdShield.Authorization;
using EtcdShield.Configuration;

namespace EtcdShield.Checks;

/// <summary>The policy, read as the proxy reads it: --policy-file by <see cref="PolicyFile"/>, then the --allow-* identities.</summary>
internal static class PolicyCheck
{
    public const string Name = "policy";

    // A policy of thousands of identities would bury the other lines.
    private const int ListedNames = 10;

    public static void Run(ShieldOptions options, CheckReport report)
    {
        var identities = new List<PolicyIdentity>();
        try
        {
            if (options.PolicyFile is { } file)
            {
                identities.AddRange(PolicyFile.Load(file));
            }

            identities.AddRange(AccessPolicy.FromAllowFlags(options.AllowCommonNames, options.AllowDnsNames, options.AllowUris));
            var policy = new AccessPolicy(identities, options.PolicyFile ?? "--allow-* flags");
            if (policy.Identities.Count == 0)
            {
                report.Fail(Name, "no identity may connect: give --policy-file (docs/policy.md) or --allow-cn/--allow-dns/--allow-uri");
                return;
            }

            var names = string.Join(", ", policy.Identities.Take(ListedNames).Select(i => i.Name));
            var more = policy.Identities.Count > ListedNames ? ", ..." : "";
            report.Ok(Name, $"{policy.Source} parses: {policy.Identities.Count} identities ({names}{more})");
        }
        catch (ConfigurationException e)
        {
            report.Fail(Name, $"{e.Message}; fix the policy (docs/policy.md) before starting, or the proxy refuses to");
        }
    }
}
