using System.Net;
using System.Runtime.Versioning;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using YamlDotNet.RepresentationModel;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// The acceptance test of the kubeadm layout: deploy/kubernetes/etcd.yaml's containers run here as processes, in
/// kubelet's way (etcd and EtcdShield, then EtcdShield's startup probe, `etcdshield check`, until it passes), with /etc/kubernetes/pki holding
/// certificates made now in kubeadm's layout, the pod's volumes in a temporary directory, the node's address on
/// 127.0.0.2 and every port moved to a free one. Then etcdctl and python3-etcd3 work through the proxy with the
/// API server's certificate (its leases, compaction and status calls too), `etcdctl endpoint health` with kubeadm's health-check certificate (and, with the policy
/// changed as the docs say for `kubeadm upgrade`, member lists naming the proxy), values are ciphertext in
/// etcd, and etcd answers no client on any TCP port.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class KubeadmLayoutTests : IDisposable
{
    private const string NodeName = "cp-1";
    private const string LayoutNodeAddress = "192.0.2.10";
    private static readonly IPAddress NodeAddress = IPAddress.Parse("127.0.0.2");

    private readonly string root = Directory.CreateTempSubdirectory("etcdshield-kubeadm-").FullName;
    private readonly TestPki pki = new();

    [Fact]
    public async Task The_manifests_containers_run_etcd_on_its_socket_behind_etcdshield_for_etcdctl_and_python_clients()
    {
        var pod = StaticPod.Load(DeployFiles.KubeadmManifest);
        var mapping = MapPod(pod);
        var pkiDirectory = mapping.HostPath("/etc/kubernetes/pki");
        KubeadmPki.Write(pki, pkiDirectory, NodeName, NodeAddress);
        await PrepareEtcdShieldDirectoryAsync(mapping);

        var container = pod.Container("etcdshield");
        await using var etcd = Start(pod.Container("etcd"), mapping);
        await using var shield = Start(container, mapping);

        // The startup probe, as kubelet runs it (every periodSeconds, until it passes): etcdshield check.
        var probe = StaticPod.Strings(StaticPod.Node(container, "startupProbe", "exec")!, "command").Select(mapping.Map).ToList();
        var check = await Eventually.HoldsAsync(
            () => LayoutPrograms.RunAsync(probe, Environment(container, mapping)),
            result => result.Succeeded || etcd.HasExited || shield.HasExited,
            TimeSpan.FromSeconds(60));
        Assert.True(check.Succeeded, check.ToString());
        Assert.DoesNotContain("FAIL", check.StdOut, StringComparison.Ordinal);

        var metricsPort = mapping.PortOf("127.0.0.1", 2382);
        using var http = new HttpClient();
        await Eventually.HoldsAsync(
            () => StatusAsync(http, new Uri($"http://127.0.0.1:{metricsPort}/readyz")),
            status => status == HttpStatusCode.OK || shield.HasExited || etcd.HasExited,
            TimeSpan.FromSeconds(60));
        Assert.False(etcd.HasExited, etcd.ToString());
        Assert.False(shield.HasExited, shield.ToString());

        var clientPort = mapping.PortOf(LayoutNodeAddress, 2379);
        var loopbackUrl = $"https://127.0.0.1:{clientPort}";
        var nodeUrl = $"https://{NodeAddress}:{clientPort}";
        var ca = KubeadmPki.EtcdCa(pkiDirectory);
        var apiServer = KubeadmPki.ApiServerClient(pkiDirectory);
        var healthCheck = KubeadmPki.HealthCheckClient(pkiDirectory);

        await LayoutClients.EtcdctlWorksAsync(loopbackUrl, ca, apiServer, "/registry/secrets/kube-system/deploy-test");
        await LayoutClients.EtcdctlWorksAsync(nodeUrl, ca, apiServer, "/registry/configmaps/kube-system/deploy-test");
        await LayoutClients.PythonEtcd3WorksAsync(loopbackUrl, ca, apiServer, "/registry/python/", root);
        await LayoutClients.ApiServerCallsWorkAsync(loopbackUrl, ca, apiServer);
        var health = await new Etcdctl(loopbackUrl, ca, healthCheck).RunAsync("endpoint", "health");
        Assert.True(health.Succeeded, health.ToString());
        var refused = await new Etcdctl(loopbackUrl, ca, healthCheck).RunAsync("get", "/registry/secrets/kube-system/deploy-test");
        Assert.Contains("PermissionDenied", refused.StdErr, StringComparison.Ordinal);

        // As docs/kubernetes.md says to before `kubeadm upgrade`: the health-check identity's methods line
        // uncommented, the policy reloaded on SIGHUP; kubeadm's member list then names the proxies.
        var policy = mapping.HostPath("/etc/etcdshield/policy.yaml");
        var original = await File.ReadAllTextAsync(policy);
        var forUpgrade = original.Replace("    # methods: [Cluster/MemberList, Maintenance/Status]\n", "    methods: [Cluster/MemberList, Maintenance/Status]\n", StringComparison.Ordinal);
        Assert.NotEqual(original, forUpgrade);
        await File.WriteAllTextAsync(policy + ".new", forUpgrade);
        File.Move(policy + ".new", policy, overwrite: true);
        (await ExternalCommand.RunAsync("/bin/kill", ["-HUP", shield.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)])).EnsureSuccess();
        await Eventually.HoldsAsync(() => new Etcdctl(nodeUrl, ca, healthCheck).RunAsync("member", "list"), r => r.Succeeded, TimeSpan.FromSeconds(30));
        await LayoutClients.MemberListNamesTheProxyAsync(nodeUrl, ca, healthCheck, nodeUrl);

        // Straight to etcd, over its socket (the only way in, and only from inside the pod): ciphertext.
        var socket = mapping.HostPath(Flags(pod.Container("etcdshield"))["upstream-endpoints"]["unixs://".Length..]);
        var stored = await new Etcdctl("unixs://" + socket, ca, new CertificatePaths(Path.Combine(pkiDirectory, "etcd", "server.crt"), Path.Combine(pkiDirectory, "etcd", "server.key")))
            .RunAsync("get", "/registry/secrets/kube-system/deploy-test", "--print-value-only", "--insecure-skip-tls-verify");
        Assert.True(stored.Succeeded, stored.ToString());
        Assert.DoesNotContain("etcdctl value", stored.StdOut, StringComparison.Ordinal);
        Assert.NotEmpty(stored.StdOut.Trim());

        await LayoutClients.EtcdIsUnreachableOverTcpAsync(
            etcd.ProcessId,
            new HashSet<int> { mapping.PortOf(LayoutNodeAddress, 2380), mapping.PortOf("127.0.0.1", 2381) },
            ca,
            apiServer,
            "/registry/secrets/kube-system/deploy-test");

        var stopped = await shield.TerminateAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, stopped.ExitCode);
    }

    public void Dispose()
    {
        pki.Dispose();
        Directory.Delete(root, recursive: true);
    }

    /// <summary>
    /// Every volume of the pod in <see cref="root"/> (hostPath volumes under host/, emptyDirs under pod/), every
    /// mount path to its volume's directory, the node's address and ports to free loopback ones.
    /// </summary>
    private HostMapping MapPod(StaticPod pod)
    {
        var mapping = new HostMapping();
        var volumes = pod.Volumes.ToDictionary(
            v => StaticPod.Scalar(v, "name")!,
            v => StaticPod.Scalar(v, "hostPath", "path") is { } hostPath ? Path.Combine(root, "host", hostPath.TrimStart('/')) : Path.Combine(root, "pod", StaticPod.Scalar(v, "name")!));
        var mounts = pod.InitContainers.Concat(pod.Containers).SelectMany(StaticPod.Mounts).Distinct().ToList();
        Assert.Equal(mounts.Count, mounts.Select(m => m.Key).Distinct().Count());
        foreach (var (mountPath, volume) in mounts)
        {
            Directory.CreateDirectory(volumes[volume]);
            mapping.Path(mountPath, volumes[volume]);
        }

        // kubeadm's certificates directory, of which the pod mounts pki/etcd; the API server's client
        // certificate sits one level up.
        mapping.Path("/etc/kubernetes/pki", Path.Combine(root, "host", "etc/kubernetes/pki"));

        var ports = FreePort.Allocate(4);
        return mapping
            .Endpoint("127.0.0.1", 2379, "127.0.0.1", ports[0])
            .Endpoint(LayoutNodeAddress, 2379, NodeAddress.ToString(), ports[0])
            .Endpoint(LayoutNodeAddress, 2380, NodeAddress.ToString(), ports[1])
            .Endpoint("127.0.0.1", 2381, "127.0.0.1", ports[2])
            .Endpoint("127.0.0.1", 2382, "127.0.0.1", ports[3]);
    }

    /// <summary>What an operator puts in /etc/kubernetes/etcdshield: the policy, the HSM's PIN and its configuration, and a token with the KEK.</summary>
    private static async Task PrepareEtcdShieldDirectoryAsync(HostMapping mapping)
    {
        var config = mapping.HostPath("/etc/etcdshield");
        var tokens = mapping.HostPath("/var/lib/softhsm/tokens");
        File.Copy(DeployFiles.KubernetesPolicy, Path.Combine(config, "policy.yaml"));
        var pin = Path.Combine(config, "pkcs11-pin");
        await File.WriteAllTextAsync(pin, "1234");
        File.SetUnixFileMode(pin, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var conf = Path.Combine(config, "softhsm2.conf");
        await File.WriteAllTextAsync(conf, $"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n");

        // The module comes from the host (the manifest mounts its directory).
        File.CreateSymbolicLink(mapping.HostPath(SoftHsmToken.ModulePath), SoftHsmToken.ModulePath);

        var environment = new Dictionary<string, string?> { ["SOFTHSM2_CONF"] = conf };
        (await ExternalCommand.RunAsync(SoftHsmToken.SoftHsmUtilPath, ["--init-token", "--free", "--label", "etcdshield", "--pin", "1234", "--so-pin", "5678"], environment: environment)).EnsureSuccess();
        (await LayoutPrograms.RunAsync(
            [LayoutPrograms.LayoutShield, "keys", "create", "--pkcs11-module", mapping.HostPath(SoftHsmToken.ModulePath), "--pkcs11-token-label", "etcdshield", "--pkcs11-pin-file", pin, "--pkcs11-key-label", "kek"],
            environment)).EnsureSuccess();
    }

    /// <summary>The probe's answer; null while nothing listens yet.</summary>
    private static async Task<HttpStatusCode?> StatusAsync(HttpClient http, Uri probe)
    {
        try
        {
            using var response = await http.GetAsync(probe);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private static BackgroundProcess Start(YamlMappingNode container, HostMapping mapping) =>
        LayoutPrograms.Start(
            Argv(container, mapping),
            Environment(container, mapping),
            StaticPod.Scalar(container, "workingDir") is { } directory ? mapping.HostPath(directory) : null);

    private static List<string> Argv(YamlMappingNode container, HostMapping mapping) =>
        StaticPod.CommandLine(container).Select(mapping.Map).ToList();

    private static Dictionary<string, string?> Environment(YamlMappingNode container, HostMapping mapping) =>
        StaticPod.Environment(container).ToDictionary(e => e.Key, e => (string?)mapping.Map(e.Value), StringComparer.Ordinal);

    private static Dictionary<string, string> Flags(YamlMappingNode container) =>
        StaticPod.CommandLine(container)
            .Where(a => a.StartsWith("--", StringComparison.Ordinal))
            .Select(a => a[2..].Split('=', 2))
            .ToDictionary(p => p[0], p => p.Length == 2 ? p[1] : "", StringComparer.Ordinal);
}
