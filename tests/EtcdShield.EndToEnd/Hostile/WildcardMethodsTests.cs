namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// An identity granted <c>methods: ["*"]</c> tries, with the real etcdctl, everything that would make it etcd's
/// administrator or hand it the whole store: a root user and AuthEnable (which would lock every client and the
/// proxy out), a snapshot, a new member, defragmentation, disarming alarms, moving the leader and compaction.
/// </summary>
public sealed class WildcardMethodsTests(WildcardMethodsFixture fixture) : IClassFixture<WildcardMethodsFixture>
{
    public static TheoryData<string[]> AdminCommands => new()
    {
        new[] { "user", "add", "root:hunter2", "--interactive=false" },
        new[] { "role", "add", "root" },
        new[] { "auth", "enable" },
        new[] { "snapshot", "save", "SNAPSHOT" },
        new[] { "member", "add", "intruder", "--peer-urls=http://127.0.0.1:1" },
        new[] { "defrag" },
        new[] { "alarm", "disarm" },
        new[] { "move-leader", "1234" },
        new[] { "compaction", "1" },
        new[] { "endpoint", "hashkv" },
    };

    [Theory]
    [MemberData(nameof(AdminCommands))]
    public async Task Star_does_not_grant_what_changes_the_cluster_its_auth_or_exports_the_store(string[] command)
    {
        var arguments = command.Select(a => a == "SNAPSHOT" ? Path.Combine(fixture.Pki.Directory, $"stolen-{Guid.NewGuid():N}.db") : a).ToArray();

        var result = await fixture.AsWildcard.RunAsync(arguments);

        Assert.False(result.Succeeded, result.ToString());
        Assert.Contains("etcdshield: permission denied: identity \"wildcard\" may not call", result.StdErr, StringComparison.Ordinal);
        var snapshot = arguments.FirstOrDefault(a => a.EndsWith(".db", StringComparison.Ordinal));
        Assert.True(snapshot is null || !File.Exists(snapshot) || new FileInfo(snapshot).Length == 0, "no snapshot bytes reached the client");
    }

    [Fact]
    public async Task Etcd_auth_stays_disabled_and_no_user_or_member_was_added()
    {
        await fixture.AsWildcard.RunAsync("user", "add", "root:hunter2", "--interactive=false");
        await fixture.AsWildcard.RunAsync("auth", "enable");

        // The proxy still writes, and etcd answers a client without credentials only while its auth is disabled.
        (await fixture.ThroughProxy.RunAsync("put", "/wild/probe", "x")).EnsureSuccess();
        Assert.Equal(["/wild/probe"], (await fixture.EtcdDirectly.RunAsync("get", "/wild/probe", "--keys-only")).EnsureSuccess().StdOutLines.Where(l => l.Length > 0));
        Assert.Empty((await fixture.EtcdDirectly.RunAsync("user", "list")).EnsureSuccess().StdOutLines);
        Assert.Single((await fixture.EtcdDirectly.RunAsync("member", "list")).EnsureSuccess().StdOutLines);
    }

    [Fact]
    public async Task Star_still_grants_the_read_only_methods_and_the_callers_own_leases()
    {
        var etcdctl = fixture.AsWildcard;

        (await etcdctl.RunAsync("endpoint", "status")).EnsureSuccess();
        Assert.Single((await etcdctl.RunAsync("member", "list")).EnsureSuccess().StdOutLines);
        var granted = (await etcdctl.RunAsync("lease", "grant", "60")).EnsureSuccess().StdOut;
        var lease = granted.Split(' ')[1];
        (await etcdctl.RunAsync("put", "--lease=" + lease, "/wild/leased", "v")).EnsureSuccess();
        Assert.Contains(lease, (await etcdctl.RunAsync("lease", "list")).EnsureSuccess().StdOut, StringComparison.Ordinal);
        Assert.Contains("granted with TTL(60s)", (await etcdctl.RunAsync("lease", "timetolive", lease)).EnsureSuccess().StdOut, StringComparison.Ordinal);
        (await etcdctl.RunAsync("lease", "keep-alive", "--once", lease)).EnsureSuccess();
        (await etcdctl.RunAsync("lease", "revoke", lease)).EnsureSuccess();
        Assert.Empty((await fixture.EtcdDirectly.RunAsync("get", "/wild/leased")).EnsureSuccess().StdOutLines);
    }
}
