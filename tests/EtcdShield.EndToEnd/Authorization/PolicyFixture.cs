using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Authorization;

/// <summary>
/// etcd behind EtcdShield with a --policy-file of three identities as a Kubernetes administrator would write
/// them (an API server with read-write on /registry/, a backup agent with only Snapshot, a monitor with only
/// Status), a tenant with narrower grants, one identity for each way of matching a certificate, and an audit log.
/// The default test client (CN etcd-client) keeps full access through --allow-cn, to set up and look behind.
/// </summary>
public sealed class PolicyFixture : ShieldFixture
{
    /// <summary>Its tests range over every key and over /tenant/, which the known-attacks tests use too.</summary>
    private protected override bool OwnsEtcd => true;

    public PolicyFixture()
    {
        ApiServer = Pki.IssueClient("policy-apiserver", "kube-apiserver-etcd-client");
        Backup = Pki.IssueClient("policy-backup", "etcd-backup");
        Monitor = Pki.IssueClient("policy-monitor", "etcd-monitor");
        Tenant = Pki.IssueClient("policy-tenant", "tenant");
        ByOu = Pki.IssueClient("policy-ou", "whoever", organizationalUnit: "storage-team");
        ByDns = Pki.IssueClient("policy-dns", "someone", dnsNames: ["reader.etcdshield.test"]);
        BySpiffe = Pki.IssueClient("policy-spiffe", commonName: null, uris: ["spiffe://etcdshield.test/ns/apps/sa/writer"]);
        ByFingerprint = Pki.IssueClient("policy-fingerprint", "pinned");
        Stranger = Pki.IssueClient("policy-stranger", "stranger", organizationalUnit: "other-team");
        using var pinned = ByFingerprint.LoadCertificate();
        var fingerprint = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(pinned.RawData));

        PolicyPath = Path.Combine(Pki.Directory, "policy.yaml");
        AuditFile = Path.Combine(Pki.Directory, "audit.log");
        File.WriteAllText(PolicyPath, $$"""
            identities:
              - name: kube-apiserver
                match: { cn: kube-apiserver-etcd-client }
                methods: [Lease]
                keys:
                  - prefix: /registry/
                    permission: readwrite
              - name: backup
                match: { cn: etcd-backup }
                methods: [Maintenance/Snapshot]
              - name: monitor
                match: { cn: etcd-monitor }
                methods: [Maintenance/Status]
              - name: tenant
                match: { cn: tenant }
                methods: [Lease/LeaseGrant, Lease/LeaseRevoke, Lease/LeaseTimeToLive]
                keys:
                  - { prefix: /tenant/, permission: readwrite }
                  - { prefix: /shared/, permission: read }
              - name: storage-team
                match: { ou: storage-team }
                keys: [{ prefix: /storage/, permission: readwrite }]
              - name: dns-reader
                match: { dns: reader.etcdshield.test }
                keys: [{ prefix: /shared/, permission: read }]
              - name: spiffe-writer
                match: { uri: "spiffe://etcdshield.test/ns/apps/**" }
                keys: [{ prefix: /apps/, permission: write }]
              - name: pinned
                match: { sha256: "{{fingerprint}}" }
                keys: [{ key: /pinned, permission: readwrite }]
            """);
    }

    public string AuditFile { get; }

    public string PolicyPath { get; }

    public CertificatePaths ApiServer { get; }

    public CertificatePaths Backup { get; }

    public CertificatePaths Monitor { get; }

    public CertificatePaths Tenant { get; }

    public CertificatePaths ByOu { get; }

    public CertificatePaths ByDns { get; }

    public CertificatePaths BySpiffe { get; }

    public CertificatePaths ByFingerprint { get; }

    public CertificatePaths Stranger { get; }

    protected override IEnumerable<string> Flags => ["--policy-file", PolicyPath, "--audit-log", AuditFile];

    internal Etcdctl As(CertificatePaths client, TimeSpan? timeout = null) =>
        new(Shield.ClientUrl, Pki.CaFile, client) { CommandTimeout = timeout };

    /// <summary>The audit log's lines so far, waiting until one satisfies <paramref name="condition"/> (the log is written in the background).</summary>
    internal Task<IReadOnlyList<System.Text.Json.JsonElement>> AuditAsync(Func<System.Text.Json.JsonElement, bool> condition) =>
        Eventually.HoldsAsync<IReadOnlyList<System.Text.Json.JsonElement>>(
            () => Task.FromResult(ReadAudit()),
            lines => lines.Any(condition),
            TimeSpan.FromSeconds(10));

    internal IReadOnlyList<System.Text.Json.JsonElement> ReadAudit()
    {
        if (!File.Exists(AuditFile))
        {
            return [];
        }

        using var stream = new FileStream(AuditFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        var lines = new List<System.Text.Json.JsonElement>();
        while (reader.ReadLine() is { } line)
        {
            if (line.EndsWith('}'))
            {
                lines.Add(System.Text.Json.JsonDocument.Parse(line).RootElement.Clone());
            }
        }

        return lines;
    }
}
