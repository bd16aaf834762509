using System.Runtime.Versioning;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// The acceptance test of the systemd layout: Debian's etcd.service with deploy/systemd's drop-in, then
/// etcdshield.service with /etc/default/etcdshield (the example as shipped), run here as systemd would run them
/// (ExecStart after the drop-in's reset, Environment= then EnvironmentFile=, WorkingDirectory=, RuntimeDirectory=,
/// $NOTIFY_SOCKET for Type=notify, ExecStartPre before ExecStart), with /etc, /run and /var mapped into a temporary
/// directory and ports moved to free ones. etcdctl and python3-etcd3 work through the proxy, values are ciphertext
/// in etcd, and etcd listens on no TCP port at all. Users are not switched: the tests run as one user.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class SystemdLayoutTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("etcdshield-systemd-").FullName;
    private readonly TestPki pki = new();

    [Fact]
    public async Task The_units_command_lines_run_etcd_on_its_socket_behind_etcdshield_for_etcdctl_and_python_clients()
    {
        var mapping = MapHost();
        var client = pki.IssueClient("systemd-apiserver", KubeadmPki.ApiServerClientName);
        await WriteOperatorFilesAsync(mapping);

        // etcd.service: Debian's unit with the drop-in; its working directory is its RuntimeDirectory.
        var etcdUnit = SystemdService.Load(DeployFiles.DebianEtcdUnit, DeployFiles.EtcdDropIn);
        Assert.Equal("/run/etcd", etcdUnit.Value("WorkingDirectory"));
        var runtimeDirectory = Directory.CreateDirectory(mapping.HostPath("/run/" + etcdUnit.Value("RuntimeDirectory"))).FullName;
        var etcdEnvironment = Mapped(etcdUnit.Environment(mapping.Map), mapping);
        using var etcdNotify = new NotifySocket(Path.Combine(root, "etcd.notify"));
        etcdEnvironment["NOTIFY_SOCKET"] = etcdNotify.Path;
        await using var etcd = LayoutPrograms.Start(
            etcdUnit.Expand(etcdUnit.Value("ExecStart")!, etcdEnvironment!).Select(mapping.Map).ToList(),
            etcdEnvironment,
            mapping.HostPath(etcdUnit.Value("WorkingDirectory")!));
        await etcdNotify.WaitForAsync("READY=1", TimeSpan.FromSeconds(30));

        // etcdshield.service, After=etcd.service: ExecStartPre (check), then ExecStart.
        var shieldUnit = SystemdService.Load(DeployFiles.ShieldUnit);
        var shieldEnvironment = Mapped(shieldUnit.Environment(mapping.Map), mapping);
        shieldEnvironment["SOFTHSM2_CONF"] = Path.Combine(mapping.HostPath("/etc/etcdshield"), "softhsm2.conf");
        var check = await LayoutPrograms.RunAsync(shieldUnit.Expand(shieldUnit.Value("ExecStartPre")!, shieldEnvironment!), shieldEnvironment);
        Assert.True(check.Succeeded, check.ToString());
        using var shieldNotify = new NotifySocket(Path.Combine(root, "etcdshield.notify"));
        shieldEnvironment["NOTIFY_SOCKET"] = shieldNotify.Path;
        await using var shield = LayoutPrograms.Start(shieldUnit.Expand(shieldUnit.Value("ExecStart")!, shieldEnvironment!), shieldEnvironment);
        await shieldNotify.WaitForAsync("READY=1", TimeSpan.FromSeconds(60));

        var proxyUrl = $"https://127.0.0.1:{mapping.PortOf("127.0.0.1", 2379)}";
        await LayoutClients.EtcdctlWorksAsync(proxyUrl, pki.CaFile, client, "/registry/secrets/default/systemd-test");
        await LayoutClients.PythonEtcd3WorksAsync(proxyUrl, pki.CaFile, client, "/registry/python/", root);
        // The example policy's monitoring identity may list members.
        var monitoring = pki.IssueClient("systemd-monitoring", commonName: null, uris: ["spiffe://cluster.local/ns/monitoring/prometheus"]);
        await LayoutClients.MemberListNamesTheProxyAsync(proxyUrl, pki.CaFile, monitoring, proxyUrl);

        // Straight to etcd, over the socket only etcd's group may reach: ciphertext.
        var socket = Path.Combine(runtimeDirectory, "localhost:2379");
        Assert.Equal("unix://" + socket, shieldEnvironment["ETCDSHIELD_UPSTREAM_ENDPOINTS"]);
        var stored = await new Etcdctl("unix://" + socket).RunAsync("get", "/registry/secrets/default/systemd-test", "--print-value-only");
        Assert.True(stored.Succeeded, stored.ToString());
        Assert.DoesNotContain("etcdctl value", stored.StdOut, StringComparison.Ordinal);
        Assert.NotEmpty(stored.StdOut.Trim());

        // Not even a peer port: etcd serves its client API there too, and the drop-in puts it on a socket.
        await LayoutClients.EtcdIsUnreachableOverTcpAsync(etcd.ProcessId, new HashSet<int>(), pki.CaFile, client, "/registry/secrets/default/systemd-test");

        var stopped = await shield.TerminateAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, stopped.ExitCode);
    }

    public void Dispose()
    {
        pki.Dispose();
        Directory.Delete(root, recursive: true);
    }

    private HostMapping MapHost()
    {
        var mapping = new HostMapping();
        foreach (var directory in (string[])["/etc/default", "/etc/etcdshield", "/run/etcd", "/var/lib/etcd", "/var/log/etcdshield", "/var/lib/softhsm/tokens"])
        {
            mapping.Path(directory, Directory.CreateDirectory(Path.Combine(root, directory.TrimStart('/'))).FullName);
        }

        var ports = FreePort.Allocate(2);
        return mapping
            .Endpoint("127.0.0.1", 2379, "127.0.0.1", ports[0])
            .Endpoint("127.0.0.1", 2382, "127.0.0.1", ports[1]);
    }

    /// <summary>
    /// What the operator writes (as on the real machine: paths and ports are mapped where the units' settings are
    /// read): /etc/default/etcdshield as shipped, and certificates, the example policy and a token with the KEK
    /// under /etc/etcdshield. /etc/default/etcd stays absent, as Debian installs it (everything commented out).
    /// </summary>
    private async Task WriteOperatorFilesAsync(HostMapping mapping)
    {
        var defaults = mapping.HostPath("/etc/default");
        File.Copy(DeployFiles.ShieldDefaults, Path.Combine(defaults, "etcdshield"));
        var etc = mapping.HostPath("/etc/etcdshield");
        var certificates = Directory.CreateDirectory(Path.Combine(etc, "pki")).FullName;
        File.Copy(pki.ServerCert.CertFile, Path.Combine(certificates, "server.crt"));
        File.Copy(pki.ServerCert.KeyFile, Path.Combine(certificates, "server.key"));
        File.Copy(pki.CaFile, Path.Combine(certificates, "ca.crt"));
        File.Copy(DeployFiles.ExamplePolicy, Path.Combine(etc, "policy.yaml"));
        var pin = Path.Combine(etc, "pkcs11-pin");
        await File.WriteAllTextAsync(pin, "1234");
        File.SetUnixFileMode(pin, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var conf = Path.Combine(etc, "softhsm2.conf");
        await File.WriteAllTextAsync(conf, $"directories.tokendir = {mapping.HostPath("/var/lib/softhsm/tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n");
        var environment = new Dictionary<string, string?> { ["SOFTHSM2_CONF"] = conf };
        (await ExternalCommand.RunAsync(SoftHsmToken.SoftHsmUtilPath, ["--init-token", "--free", "--label", "etcdshield", "--pin", "1234", "--so-pin", "5678"], environment: environment)).EnsureSuccess();
        (await LayoutPrograms.RunAsync(
            [LayoutPrograms.LayoutShield, "keys", "create", "--pkcs11-module", SoftHsmToken.ModulePath, "--pkcs11-token-label", "etcdshield", "--pkcs11-pin-file", pin, "--pkcs11-key-label", "kek"],
            environment)).EnsureSuccess();
    }

    /// <summary>The unit's environment with its paths and addresses mapped, as the processes get it.</summary>
    private static Dictionary<string, string?> Mapped(Dictionary<string, string> environment, HostMapping mapping) =>
        environment.ToDictionary(e => e.Key, e => (string?)mapping.Map(e.Value), StringComparer.Ordinal);
}
