using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Authorization;

/// <summary>
/// The acceptance of the policy, with the real etcdctl: an API server with read-write on /registry/, a backup agent
/// with only Snapshot and a monitor with only Status can each do exactly what they were granted and nothing else,
/// and every decision is in the audit log.
/// </summary>
[Collection(PolicyProxy.Name)]
public sealed class PolicyAcceptanceTests(PolicyFixture fixture)
{
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task The_api_server_reads_and_writes_under_registry_and_nothing_else()
    {
        var api = fixture.As(fixture.ApiServer, Quick);

        (await api.RunAsync("put", "/registry/pods/default/web", "pod-spec")).EnsureSuccess();
        Assert.Equal(["pod-spec"], (await api.RunAsync("get", "/registry/pods/default/web", "--print-value-only")).EnsureSuccess().StdOutLines);
        Assert.Equal(["1"], (await api.RunAsync("del", "/registry/pods/default/web")).EnsureSuccess().StdOutLines);
        Assert.Contains("granted with TTL", (await api.RunAsync("lease", "grant", "60")).EnsureSuccess().StdOut, StringComparison.Ordinal);

        AssertDenied(await api.RunAsync("get", "/other"), "kube-apiserver", "KV/Range");
        AssertDenied(await api.RunAsync("get", "", "--from-key"), "kube-apiserver", "every key");
        AssertDenied(await api.RunAsync("put", "/registry", "just outside"), "kube-apiserver", "KV/Put");
        AssertDenied(await api.RunAsync("endpoint", "status"), "kube-apiserver", "Maintenance/Status");
        AssertDenied(await api.RunAsync("snapshot", "save", Path.Combine(fixture.Pki.Directory, "api.db")), "kube-apiserver", "Maintenance/Snapshot");
        Assert.Empty((await fixture.EtcdDirectly.RunAsync("get", "/registry")).EnsureSuccess().StdOut);

        await fixture.AuditAsync(l => Is(l, "kube-apiserver", "KV/Put", "allowed") && Key(l) == "/registry/pods/default/web");
        await fixture.AuditAsync(l => Is(l, "kube-apiserver", "KV/Put", "denied") && Key(l) == "/registry");
        await fixture.AuditAsync(l => Is(l, "kube-apiserver", "Maintenance/Status", "denied"));
    }

    [Fact]
    public async Task The_backup_agent_takes_snapshots_and_nothing_else()
    {
        var backup = fixture.As(fixture.Backup, Quick);
        var file = Path.Combine(fixture.Pki.Directory, "backup.db");

        Assert.Contains("Snapshot saved", (await backup.RunAsync("snapshot", "save", file)).EnsureSuccess().StdOut, StringComparison.Ordinal);
        Assert.True(new FileInfo(file).Length > 0);

        AssertDenied(await backup.RunAsync("get", "/registry/secrets/kube-system/token"), "backup", "KV/Range");
        AssertDenied(await backup.RunAsync("put", "/registry/x", "y"), "backup", "KV/Put");
        AssertDenied(await backup.RunAsync("endpoint", "status"), "backup", "Maintenance/Status");
        AssertDenied(await backup.RunAsync("lease", "grant", "10"), "backup", "Lease/LeaseGrant");

        await fixture.AuditAsync(l => Is(l, "backup", "Maintenance/Snapshot", "allowed") && l.GetProperty("code").GetString() == "OK");
        await fixture.AuditAsync(l => Is(l, "backup", "KV/Range", "denied"));
        await fixture.AuditAsync(l => Is(l, "backup", "Lease/LeaseGrant", "denied"));
    }

    [Fact]
    public async Task The_monitor_reads_status_and_nothing_else()
    {
        var monitor = fixture.As(fixture.Monitor, Quick);

        Assert.Contains(fixture.Shield.ClientUrl, (await monitor.RunAsync("endpoint", "status")).EnsureSuccess().StdOut, StringComparison.Ordinal);

        AssertDenied(await monitor.RunAsync("get", "/registry/", "--prefix", "--keys-only"), "monitor", "KV/Range");
        AssertDenied(await monitor.RunAsync("snapshot", "save", Path.Combine(fixture.Pki.Directory, "monitor.db")), "monitor", "Maintenance/Snapshot");
        AssertDenied(await monitor.RunAsync("member", "list"), "monitor", "Cluster/MemberList");
        AssertDenied(await monitor.RunAsync("defrag"), "monitor", "Maintenance/Defragment");

        await fixture.AuditAsync(l => Is(l, "monitor", "Maintenance/Status", "allowed"));
        await fixture.AuditAsync(l => Is(l, "monitor", "Maintenance/Defragment", "denied"));
    }

    [Fact]
    public async Task An_etcdctl_watch_on_a_forbidden_range_ends_with_permission_denied()
    {
        var watch = await fixture.As(fixture.ApiServer, Quick).RunAsync("watch", "/other/", "--prefix");

        Assert.False(watch.Succeeded, watch.ToString());
        Assert.False(watch.TimedOut, watch.ToString());
        Assert.Contains("PermissionDenied", watch.StdErr + watch.StdOut, StringComparison.Ordinal);
        Assert.Contains("identity \"kube-apiserver\"", watch.StdErr + watch.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_audit_log_never_holds_a_value()
    {
        const string Secret = "audit-canary-3f9c2b";
        var api = fixture.As(fixture.ApiServer, Quick);
        (await api.RunAsync("put", "/registry/secrets/default/canary", Secret)).EnsureSuccess();
        AssertDenied(await api.RunAsync("put", "/outside/canary", Secret), "kube-apiserver", "KV/Put");

        var lines = await fixture.AuditAsync(l => Is(l, "kube-apiserver", "KV/Put", "denied") && Key(l) == "/outside/canary");

        Assert.Contains(lines, l => Is(l, "kube-apiserver", "KV/Put", "allowed") && Key(l) == "/registry/secrets/default/canary");
        Assert.DoesNotContain(Secret, await File.ReadAllTextAsync(fixture.AuditFile), StringComparison.Ordinal);
    }

    private static void AssertDenied(CommandResult result, string identity, string operation)
    {
        Assert.False(result.Succeeded, result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        Assert.Contains("PermissionDenied", result.StdErr, StringComparison.Ordinal);
        Assert.Contains($"identity \"{identity}\"", result.StdErr, StringComparison.Ordinal);
        Assert.Contains(operation, result.StdErr, StringComparison.Ordinal);
    }

    private static bool Is(JsonElement line, string identity, string method, string outcome) =>
        line.GetProperty("identity").GetString() == identity &&
        line.GetProperty("method").GetString() == method &&
        line.GetProperty("outcome").GetString() == outcome;

    private static string? Key(JsonElement line) =>
        line.TryGetProperty("keys", out var keys) && keys.GetArrayLength() > 0 ? keys[0].GetProperty("key").GetString() : null;
}
