using System.Text;
using EtcdShield.Authorization;
using EtcdShield.Configuration;

namespace EtcdShield.Tests.Authorization;

public sealed class PolicyFileTests
{
    internal const string ThreeIdentities = """
        identities:
          - name: kube-apiserver
            match:
              cn: kube-apiserver-etcd-client
            methods: [Lease, Maintenance/Status, KV/Compact]
            keys:
              - prefix: /registry/
                permission: readwrite
          - name: backup
            match: { cn: etcd-backup, ou: [ops] }
            methods: [Maintenance/Snapshot]
          - name: monitor
            match:
              uri: spiffe://cluster.local/ns/monitoring/**
            methods:
              - Maintenance/Status
        """;

    private static byte[] B(string text) => Encoding.UTF8.GetBytes(text);

    [Fact]
    public void Reads_identities_methods_and_key_grants()
    {
        var identities = PolicyFile.Parse(ThreeIdentities);

        Assert.Equal(["kube-apiserver", "backup", "monitor"], identities.Select(i => i.Name));
        var api = identities[0];
        Assert.True(api.MayCall("Lease/LeaseGrant"));
        Assert.True(api.MayCall("Lease/LeaseKeepAlive"));
        Assert.True(api.MayCall("KV/Compact"));
        Assert.False(api.MayCall("Maintenance/Snapshot"));
        Assert.True(api.Keys.Allows(KeyRange.Prefix(B("/registry/secrets/")), KeyPermission.ReadWrite));
        Assert.False(api.Keys.Allows(KeyRange.SingleKey(B("/other")), KeyPermission.Read));

        Assert.Equal(["Maintenance/Snapshot"], identities[1].Methods);
        Assert.Equal(["ops"], identities[1].Match.OrganizationalUnits);
        Assert.True(identities[1].Keys.IsEmpty);
        Assert.Equal(["spiffe://cluster.local/ns/monitoring/**"], identities[2].Match.UriPatterns);
    }

    [Fact]
    public void Star_grants_only_the_read_only_methods_and_the_callers_own_leases()
    {
        var identity = Assert.Single(PolicyFile.Parse("""
            identities:
              - name: app
                match: { cn: app }
                methods: ["*"]
            """));

        Assert.Equal(
            ["Lease/LeaseGrant", "Lease/LeaseRevoke", "Lease/LeaseKeepAlive", "Lease/LeaseTimeToLive", "Lease/LeaseLeases", "Cluster/MemberList", "Maintenance/Status"],
            identity.Methods);
        Assert.False(identity.MayCall("KV/Put"));
        Assert.True(identity.Keys.IsEmpty);
    }

    [Theory]
    [InlineData("Auth/AuthEnable")]
    [InlineData("Auth/UserAdd")]
    [InlineData("Auth/AuthStatus")]
    [InlineData("Maintenance/Snapshot")]
    [InlineData("Maintenance/Defragment")]
    [InlineData("Maintenance/Alarm")]
    [InlineData("Maintenance/MoveLeader")]
    [InlineData("Maintenance/Hash")]
    [InlineData("Maintenance/HashKV")]
    [InlineData("Maintenance/Downgrade")]
    [InlineData("Cluster/MemberAdd")]
    [InlineData("Cluster/MemberRemove")]
    [InlineData("Cluster/MemberUpdate")]
    [InlineData("Cluster/MemberPromote")]
    [InlineData("KV/Compact")]
    public void What_changes_the_cluster_its_auth_or_exports_the_store_is_granted_only_by_its_full_name(string method)
    {
        var identities = PolicyFile.Parse($$"""
            identities:
              - name: star
                match: { cn: star }
                methods: ["*", Maintenance, Cluster, Lease]
              - name: named
                match: { cn: named }
                methods: [{{method}}]
            """);

        Assert.False(identities[0].MayCall(method));
        Assert.Equal([method], identities[1].Methods);
    }

    [Fact]
    public void A_service_name_grants_that_services_read_only_methods()
    {
        var identity = Assert.Single(PolicyFile.Parse("""
            identities:
              - name: ops
                match: { cn: ops }
                methods: [Maintenance, Cluster]
            """));

        Assert.Equal(["Maintenance/Status", "Cluster/MemberList"], identity.Methods);
    }

    [Theory]
    [InlineData("Auth", "Auth/AuthEnable")]
    [InlineData("KV", "KV/Compact")]
    public void A_service_name_that_would_grant_nothing_but_privileged_methods_is_an_error(string service, string example)
    {
        var e = Assert.Throws<ConfigurationException>(() => PolicyFile.Parse($"identities:\n  - name: a\n    match: {{ cn: a }}\n    methods: [{service}]\n"));

        Assert.Contains($"the service name {service} grants none of its methods", e.Message, StringComparison.Ordinal);
        Assert.Contains($"(e.g. {example})", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_allow_flags_stay_administrators()
    {
        var admin = Assert.Single(AccessPolicy.FromAllowFlags(["root"], [], []));

        Assert.True(admin.MayCall("Auth/AuthEnable"));
        Assert.True(admin.MayCall("Maintenance/Snapshot"));
        Assert.True(admin.ManagesEveryLease);
    }

    [Fact]
    public void Key_grants_take_key_with_range_end_or_prefix()
    {
        var identity = Assert.Single(PolicyFile.Parse("""
            identities:
              - name: reader
                match: { dns: reader.example }
                keys:
                  - { key: /a, range_end: /c, permission: READ }
                  - { key: /single, permission: write }
                  - { key: /from, range_end: "\0", permission: read }
            """));

        Assert.True(identity.Keys.Allows(KeyRange.FromEtcd(B("/b"), B("/bz")), KeyPermission.Read));
        Assert.False(identity.Keys.Allows(KeyRange.SingleKey(B("/c")), KeyPermission.Read));
        Assert.True(identity.Keys.Allows(KeyRange.SingleKey(B("/single")), KeyPermission.Write));
        Assert.False(identity.Keys.Allows(KeyRange.SingleKey(B("/single/x")), KeyPermission.Write));
        Assert.True(identity.Keys.Allows(KeyRange.FromEtcd(B("/zzz"), [0]), KeyPermission.Read));
    }

    [Theory]
    [InlineData("identities: []", "non-empty")]
    [InlineData("identities:\n  - name: a\n    match: { cn: a }\n    methods: [Maintenance/Snapshott]", "no etcd method or service 'Maintenance/Snapshott'")]
    [InlineData("identities:\n  - name: a\n    match: { cn: a }\n    methods: [KV/Range]", "allowed by key grants")]
    [InlineData("identities:\n  - name: a\n    match: { cn: a }\n    methods: [Watch]", "allowed by key grants")]
    [InlineData("identities:\n  - name: a\n    match: {}\n", "matches nothing")]
    [InlineData("identities:\n  - name: a\n    match: { cn: a }\n    mehtods: [Lease]", "unknown field 'mehtods'")]
    [InlineData("identities:\n  - name: a\n    match: { cn: a }\n  - name: a\n    match: { cn: b }", "used twice")]
    [InlineData("identities:\n  - name: a\n    match: { sha256: abc }", "not a SHA-256 fingerprint")]
    [InlineData("identities:\n  - name: a\n    match: { cn: a }\n    keys: [{ prefix: /x, permission: all }]", "permission 'all'")]
    [InlineData("identities:\n  - name: a\n    match: { cn: a }\n    keys: [{ prefix: /x }]", "needs permission")]
    [InlineData("identities:\n  - name: a\n    match: { cn: a }\n    keys: [{ key: /b, range_end: /a, permission: read }]", "range_end must come after key")]
    [InlineData("identities:\n  - name: a\n    match: { cn: a }\n    keys: [{ key: /b, prefix: /a, permission: read }]", "either prefix")]
    [InlineData("identities:\n  - name: a\n    match: { cn: [a\n", "not valid YAML")]
    [InlineData("- just a list", "'identities'")]
    public void Refuses_what_it_cannot_read_exactly_and_says_why(string yaml, string expected)
    {
        var e = Assert.Throws<ConfigurationException>(() => PolicyFile.Parse(yaml));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Errors_name_the_line()
    {
        var e = Assert.Throws<ConfigurationException>(() => PolicyFile.Parse("identities:\n  - name: a\n    match: { cn: a }\n    methods: [Nope]\n"));
        Assert.StartsWith("line 4:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_example_policy_in_deploy_loads_and_means_what_its_comments_say()
    {
        var identities = PolicyFile.Load(RepositoryFile.Find(Path.Combine("deploy", "policy.example.yaml")));

        var api = identities.Single(i => i.Name == "kube-apiserver");
        Assert.True(api.Keys.Allows(KeyRange.Prefix(B("/registry/")), KeyPermission.ReadWrite));
        Assert.True(api.Keys.Allows(KeyRange.SingleKey(B("compact_rev_key")), KeyPermission.ReadWrite));
        Assert.True(api.MayCall("KV/Compact"));
        Assert.False(api.MayCall("Maintenance/Snapshot"));
        Assert.Equal(["Maintenance/Snapshot"], identities.Single(i => i.Name == "etcd-backup").Methods);
        Assert.True(identities.Single(i => i.Name == "monitoring").Keys.IsEmpty);
        Assert.All(identities, i => Assert.False(i.MayCall("Auth/AuthEnable")));
        Assert.DoesNotContain(identities, i => i.ManagesEveryLease);
    }

    [Fact]
    public void The_example_policys_break_glass_entry_loads_and_is_no_auth_administrator()
    {
        var text = File.ReadAllText(RepositoryFile.Find(Path.Combine("deploy", "policy.example.yaml")));
        var start = text.IndexOf("  # - name: break-glass", StringComparison.Ordinal);
        var entry = string.Join('\n', text[start..].Split('\n').Where(l => l.StartsWith("  # ", StringComparison.Ordinal)).Select(l => "  " + l[4..]));

        // The comment's fingerprint is a placeholder for the operator's.
        var breakGlass = Assert.Single(PolicyFile.Parse("identities:\n" + entry.Replace("\"AA:BB:...\"", new string('a', 64), StringComparison.Ordinal)));

        Assert.True(breakGlass.ManagesEveryLease);
        Assert.True(breakGlass.MayCall("Cluster/MemberRemove"));
        Assert.False(breakGlass.MayCall("Auth/AuthEnable"));
        Assert.False(breakGlass.MayCall("Maintenance/Snapshot"));
    }

    [Fact]
    public void Methods_may_be_written_with_their_full_grpc_names()
    {
        var identity = Assert.Single(PolicyFile.Parse("""
            identities:
              - name: backup
                match: { cn: backup }
                methods: [/etcdserverpb.Maintenance/Snapshot, etcdserverpb.Lease]
                keys: [{ prefix: /b/, permission: READ_WRITE }]
            """));

        Assert.True(identity.MayCall("Maintenance/Snapshot"));
        Assert.True(identity.MayCall("Lease/LeaseGrant"));
        Assert.False(identity.MayCall("Maintenance/Status"));
        Assert.True(identity.Keys.Allows(KeyRange.Prefix(B("/b/")), KeyPermission.ReadWrite));
    }

    [Theory]
    [InlineData(100_000)]
    [InlineData(65)]
    public void A_document_nested_deeper_than_any_policy_is_refused_before_it_is_built(int depth)
    {
        var yaml = "identities: " + new string('[', depth) + new string(']', depth);

        var refused = Assert.Throws<ConfigurationException>(() => PolicyFile.Parse(yaml));

        Assert.Contains("nested deeper than 64 levels", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_policy_with_yaml_aliases_is_refused_before_they_are_expanded()
    {
        // Nine levels of ten aliases each: a few hundred bytes that stand for a billion grants.
        var yaml = new System.Text.StringBuilder("""
            identities:
              - name: laughs
                match: { cn: laughs }
                keys: &l0 [{ key: /a, permission: read }]
            """);
        yaml.AppendLine();
        for (var level = 1; level <= 9; level++)
        {
            yaml.AppendLine(System.Globalization.CultureInfo.InvariantCulture, $"  - name: laughs-{level}");
            yaml.AppendLine(System.Globalization.CultureInfo.InvariantCulture, $"    match: {{ cn: laughs-{level} }}");
            yaml.AppendLine(System.Globalization.CultureInfo.InvariantCulture, $"    keys: &l{level} [{string.Join(", ", Enumerable.Repeat($"*l{level - 1}", 10))}]");
        }

        var refused = Assert.Throws<ConfigurationException>(() => PolicyFile.Parse(yaml.ToString()));

        Assert.Contains("YAML aliases (*l0) are not supported", refused.Message, StringComparison.Ordinal);
        Assert.StartsWith("line 7:", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nesting_within_the_limit_reaches_the_format_checks()
    {
        var refused = Assert.Throws<ConfigurationException>(() => PolicyFile.Parse("identities: " + new string('[', 63) + new string(']', 63)));

        Assert.DoesNotContain("nested deeper", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_policy_file_over_the_size_limit_is_refused_unread()
    {
        var path = Path.Combine(Path.GetTempPath(), $"shield-policy-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, ThreeIdentities + "\n#" + new string('x', PolicyFile.MaxBytes));
        try
        {
            var refused = Assert.Throws<ConfigurationException>(() => PolicyFile.Load(path));

            Assert.Contains("more than the 4194304", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Inputs the fuzzer (tests/fuzz.sh, target policy) found: YamlDotNet threw other exceptions than YamlException.</summary>
    [Theory]
    [InlineData("ISEhISEhISEhISEhISEhIV8hXQ==")] // ArgumentException: global tags must be valid URIs
    [InlineData("X2RlbnRpdCAgIG1hdGNoOmllczoKICAtIG5hbWU6IG9uZQogICAgbWH/Y2g6IHsgY246IG9uZSB9CiAgICBrZXlzOiAmc2hhcmVkCiAgICAgIC0geyBwcmVmaXg6IC9zaGFyZWQvLCBwZXJtaXNzaW9uICAtbyB9CiAqc2hhcmVk")] // ArgumentException: unsupported event
    [InlineData("aWRlTnRoOiB7IGRuczogW2EudGVzdCwgYi50QnN0XSwgc2g6IHsgY246IO9uZSB9Cj9zOiBbYS50ZXN0LCBiLnRCcyAgIGtll3M6ICZzaGFyZWQKICAWIHsgcHJlZml4OiAvc2g=")] // InvalidOperationException in the parser
    public void Malformed_yaml_found_by_fuzzing_is_a_configuration_error(string base64)
    {
        var yaml = Encoding.UTF8.GetString(Convert.FromBase64String(base64));

        var refused = Assert.Throws<ConfigurationException>(() => PolicyFile.Parse(yaml));

        // Not valid YAML, or (the second) refused earlier for the alias it holds: a configuration error either way.
        Assert.Matches("not valid YAML|aliases .* are not supported", refused.Message);
    }

    [Fact]
    public void Two_grants_of_the_empty_key_grant_that_key_and_nothing_else()
    {
        var identity = PolicyFile.Parse("""
            identities:
              - name: careless
                match: { cn: careless }
                keys:
                  - { key: "", permission: read }
                  - { key: "", permission: readwrite }
            """).Single();

        Assert.True(identity.Keys.Allows(KeyRange.SingleKey([]), KeyPermission.ReadWrite));
        Assert.False(identity.Keys.Allows(KeyRange.SingleKey("/registry/secrets/a"u8), KeyPermission.Read));
        Assert.False(identity.Keys.Everything);
    }
}
