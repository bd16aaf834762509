using System.Text;
using EtcdShield.Authorization;
using EtcdShield.Configuration;

namespace EtcdShield.Fuzz;

/// <summary>
/// A <c>--policy-file</c>, which whoever can write it (or a tool generating it) controls, read at every reload:
/// <see cref="PolicyFile.Parse"/> must refuse bad YAML and bad policies with <see cref="ConfigurationException"/>
/// only, since anything else would stop a reload or, before the fix of finding 15, the process.
/// </summary>
internal sealed class PolicyTarget : FuzzTarget
{
    public override string Name => "policy";

    public override FuzzAction Prepare(string directory) => input =>
    {
        try
        {
            var identities = PolicyFile.Parse(Encoding.UTF8.GetString(input));
            _ = new AccessPolicy(identities, "fuzz");
        }
        catch (ConfigurationException)
        {
        }
    };

    public override IEnumerable<(string Name, byte[] Bytes)> Seeds(string directory)
    {
        yield return ("kubernetes", Encoding.UTF8.GetBytes("""
            identities:
              - name: kube-apiserver
                match:
                  cn: kube-apiserver-etcd-client
                methods: [Lease, KV/Compact, Maintenance/Status]
                keys:
                  - prefix: /registry/
                    permission: readwrite
                  - key: compact_rev_key
                    permission: readwrite
                  - { key: health, permission: read }
              - name: etcd-backup
                match: { cn: etcd-backup, ou: platform-ops }
                methods: [Maintenance/Snapshot]
              - name: monitoring
                match:
                  uri: spiffe://cluster.local/ns/monitoring/**
                methods: [Maintenance/Status, Cluster/MemberList]
            """));
        yield return ("ranges", Encoding.UTF8.GetBytes("""
            identities:
              - name: tenant
                match: { dns: [a.test, b.test], sha256: "0000000000000000000000000000000000000000000000000000000000000000" }
                keys:
                  - { key: /a, range_end: /c, permission: read }
                  - { key: /c, range_end: "\0", permission: write }
                  - { prefix: "", permission: read }
            """));
        yield return ("anchors", Encoding.UTF8.GetBytes("""
            identities:
              - name: one
                match: { cn: one }
                keys: &shared
                  - { prefix: /shared/, permission: read }
              - name: two
                match: { cn: two }
                keys: *shared
            """));
    }
}
