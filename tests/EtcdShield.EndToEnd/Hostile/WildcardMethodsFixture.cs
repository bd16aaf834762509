using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// etcd behind EtcdShield with a policy whose only identity writes <c>methods: ["*"]</c> and a key prefix: the
/// entry an operator writes for "let it use etcd", which must not make it etcd's administrator.
/// </summary>
public sealed class WildcardMethodsFixture : ShieldFixture
{
    public WildcardMethodsFixture()
    {
        Wildcard = Pki.IssueClient("wildcard", "wildcard");
        PolicyPath = Path.Combine(Pki.Directory, "wildcard-policy.yaml");
        File.WriteAllText(PolicyPath, """
            identities:
              - name: wildcard
                match: { cn: wildcard }
                methods: ["*"]
                keys:
                  - { prefix: /wild/, permission: readwrite }
            """);
    }

    public CertificatePaths Wildcard { get; }

    public string PolicyPath { get; }

    protected override IEnumerable<string> Flags => ["--policy-file", PolicyPath];

    internal Etcdctl AsWildcard => new(Shield.ClientUrl, Pki.CaFile, Wildcard) { CommandTimeout = TimeSpan.FromSeconds(5) };
}
