using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// An encrypting EtcdShield whose policy gives one tenant read-write on <c>/tenant/</c> and nothing else: the
/// narrow-grant attacker of the threat model. The default test client keeps full access, to plant what the
/// tenant must not reach and to look behind its back.
/// </summary>
public sealed class KnownAttacksFixture : ShieldFixture
{
    /// <summary>Its tests range from "/" and over /tenant/, which the policy tests use too.</summary>
    private protected override bool OwnsEtcd => true;

    public KnownAttacksFixture()
    {
        Tenant = Pki.IssueClient("known-attacks-tenant", "tenant");
        PolicyPath = Path.Combine(Pki.Directory, "known-attacks-policy.yaml");
        File.WriteAllText(PolicyPath, """
            identities:
              - name: tenant
                match: { cn: tenant }
                keys:
                  - { prefix: /tenant/, permission: readwrite }
            """);
    }

    public CertificatePaths Tenant { get; }

    public string PolicyPath { get; }

    protected override IEnumerable<string> Flags => ["--policy-file", PolicyPath];

    internal GrpcChannel TenantChannel() => GrpcClients.Channel(Shield.ClientUrl, Pki, Tenant);

    internal GrpcChannel AdminChannel() => GrpcClients.Channel(Shield.ClientUrl, Pki);

    internal GrpcChannel EtcdChannel() => GrpcChannels.ToEtcd(Etcd);
}
