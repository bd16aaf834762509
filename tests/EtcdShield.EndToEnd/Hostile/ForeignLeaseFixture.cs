using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// etcd behind EtcdShield with two tenants that may both use leases, each with its own prefix: alice, whose
/// leases are attacked, and mallory, who attacks them. The default client keeps full access (--allow-cn).
/// </summary>
public sealed class ForeignLeaseFixture : ShieldFixture
{
    public ForeignLeaseFixture()
    {
        Alice = Pki.IssueClient("lease-alice", "alice");
        Mallory = Pki.IssueClient("lease-mallory", "mallory");
        PolicyPath = Path.Combine(Pki.Directory, "lease-policy.yaml");
        File.WriteAllText(PolicyPath, """
            identities:
              - name: alice
                match: { cn: alice }
                methods: [Lease]
                keys:
                  - { prefix: /alice/, permission: readwrite }
              - name: mallory
                match: { cn: mallory }
                methods: [Lease]
                keys:
                  - { prefix: /mallory/, permission: readwrite }
            """);
    }

    public CertificatePaths Alice { get; }

    public CertificatePaths Mallory { get; }

    public string PolicyPath { get; }

    protected override IEnumerable<string> Flags => ["--policy-file", PolicyPath];

    internal Etcdctl As(CertificatePaths client) => new(Shield.ClientUrl, Pki.CaFile, client) { CommandTimeout = TimeSpan.FromSeconds(5) };

    /// <summary>Grants a lease through the proxy as <paramref name="client"/> and returns its ID as etcdctl prints it (hex).</summary>
    internal async Task<string> GrantAsync(CertificatePaths client, int ttl = 300)
    {
        var output = (await As(client).RunAsync("lease", "grant", ttl.ToString(System.Globalization.CultureInfo.InvariantCulture))).EnsureSuccess().StdOut;
        // "lease 694d7b5a6b0ef20b granted with TTL(300s)"
        return output.Split(' ')[1];
    }
}
