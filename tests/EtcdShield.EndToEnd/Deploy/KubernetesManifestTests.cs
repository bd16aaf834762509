using EtcdShield.Authorization;
using YamlDotNet.RepresentationModel;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// deploy/kubernetes as kubelet and kubeadm read it: the pod's placement and confinement, etcd with no TCP client
/// listener and the proxy on kubeadm's client addresses with kubeadm's certificates, probes on the proxy's own
/// metrics port, the check as the startup probe, a policy the proxy loads, and the patch and kubeadm configuration that
/// make the same pod as the whole manifest.
/// </summary>
public sealed class KubernetesManifestTests
{
    private const string Pki = "/etc/kubernetes/pki/etcd/";

    private readonly StaticPod pod = StaticPod.Load(DeployFiles.KubeadmManifest);

    [Fact]
    public void The_pod_is_a_node_critical_host_network_pod_under_the_runtime_seccomp_profile()
    {
        Assert.Equal("true", StaticPod.Scalar(pod.Spec, "hostNetwork"));
        Assert.Equal("system-node-critical", StaticPod.Scalar(pod.Spec, "priorityClassName"));
        Assert.Equal("RuntimeDefault", StaticPod.Scalar(pod.Spec, "securityContext", "seccompProfile", "type"));
        Assert.Equal("kube-system", StaticPod.Scalar(pod.Root, "metadata", "namespace"));
    }

    [Fact]
    public void The_proxy_runs_with_a_read_only_root_no_capabilities_and_no_privilege_escalation()
    {
        var container = pod.Container("etcdshield");

        Assert.Equal("true", StaticPod.Scalar(container, "securityContext", "readOnlyRootFilesystem"));
        Assert.Equal("false", StaticPod.Scalar(container, "securityContext", "allowPrivilegeEscalation"));
        Assert.Equal("RuntimeDefault", StaticPod.Scalar(container, "securityContext", "seccompProfile", "type"));
        Assert.Equal(["ALL"], StaticPod.Strings(StaticPod.Node(container, "securityContext", "capabilities")!, "drop"));
    }

    [Fact]
    public void Etcd_listens_for_clients_only_on_a_tls_socket_in_a_directory_the_proxy_mounts()
    {
        var etcd = Flags(pod.Container("etcd"));
        var shield = Flags(pod.Container("etcdshield"));
        var socketDirectory = StaticPod.Scalar(pod.Container("etcd"), "workingDir")!;
        var socketVolume = StaticPod.Mounts(pod.Container("etcd"))[socketDirectory];

        Assert.Equal("unixs://localhost:2379", etcd["listen-client-urls"]);
        Assert.Equal("true", etcd["client-cert-auth"]);
        Assert.Equal(Pki + "server.crt", etcd["cert-file"]);
        Assert.Equal(Pki + "ca.crt", etcd["trusted-ca-file"]);
        Assert.Equal($"unixs://{socketDirectory}/localhost:2379", shield["upstream-endpoints"]);
        Assert.Equal(socketVolume, StaticPod.Mounts(pod.Container("etcdshield"))[socketDirectory]);
        Assert.NotNull(StaticPod.Node(pod.Volume(socketVolume), "emptyDir"));
    }

    [Fact]
    public void The_proxy_serves_kubeadms_client_addresses_with_etcds_certificate_and_member_lists_name_it()
    {
        var etcd = Flags(pod.Container("etcd"));
        var shield = Flags(pod.Container("etcdshield"));
        var advertised = etcd["advertise-client-urls"];

        Assert.Equal(["https://127.0.0.1:2379", advertised], shield["listen-client-urls"].Split(','));
        Assert.Equal(advertised, shield["advertise-client-urls"]);
        Assert.Equal(advertised, StaticPod.Scalar(pod.Root, "metadata", "annotations", "kubeadm.kubernetes.io/etcd.advertise-client-urls"));
        Assert.Equal(Pki + "server.crt", shield["cert-file"]);
        Assert.Equal(Pki + "server.key", shield["key-file"]);
        Assert.Equal(Pki + "ca.crt", shield["trusted-ca-file"]);
    }

    [Fact]
    public void The_proxy_probes_are_its_livez_and_readyz_on_a_loopback_metrics_port_other_than_etcds()
    {
        var container = pod.Container("etcdshield");
        var metrics = new Uri(Flags(container)["metrics-listen-url"]);
        var etcdMetrics = new Uri(Flags(pod.Container("etcd"))["listen-metrics-urls"]);

        Assert.Equal("127.0.0.1", metrics.Host);
        Assert.NotEqual(etcdMetrics.Port, metrics.Port);
        Assert.Equal("/livez", StaticPod.Scalar(container, "livenessProbe", "httpGet", "path"));
        Assert.Equal("/readyz", StaticPod.Scalar(container, "readinessProbe", "httpGet", "path"));
        foreach (var probe in (string[])["livenessProbe", "readinessProbe"])
        {
            Assert.Equal(metrics.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StaticPod.Scalar(container, probe, "httpGet", "port"));
            Assert.Equal("127.0.0.1", StaticPod.Scalar(container, probe, "httpGet", "host"));
        }
    }

    [Fact]
    public void The_startup_probe_runs_check_with_exactly_the_flags_the_proxy_serves_with()
    {
        var container = pod.Container("etcdshield");
        var check = StaticPod.Strings(StaticPod.Node(container, "startupProbe", "exec")!, "command");
        var serve = StaticPod.CommandLine(container);

        // An init container would run before etcd starts, and check's etcd line could never pass.
        Assert.Empty(pod.InitContainers);
        Assert.Equal(["/opt/etcdshield/EtcdShield", "check"], check.Take(2));
        Assert.Equal(["/opt/etcdshield/EtcdShield", "serve"], serve.Take(2));
        Assert.Equal(serve.Skip(2), check.Skip(2));
    }

    [Fact]
    public void The_policy_the_pod_mounts_is_deploy_kubernetes_policy_and_loads_with_the_proxys_loader()
    {
        var policyFile = Flags(pod.Container("etcdshield"))["policy-file"];
        var mount = StaticPod.Mounts(pod.Container("etcdshield")).Single(m => policyFile.StartsWith(m.Key + "/", StringComparison.Ordinal));
        var hostDirectory = StaticPod.Scalar(pod.Volume(mount.Value), "hostPath", "path");

        var identities = PolicyFile.Load(DeployFiles.KubernetesPolicy);

        Assert.Equal("/etc/kubernetes/etcdshield", hostDirectory);
        Assert.Equal(mount.Key + "/policy.yaml", policyFile);
        Assert.Equal(["kube-apiserver", "kube-etcd-healthcheck-client"], identities.Select(i => i.Name));
        Assert.True(identities[0].MayCall("KV/Compact"));
        Assert.True(identities[0].MayCall("Lease/LeaseGrant"));
        Assert.False(identities[1].MayCall("Cluster/MemberRemove"));
    }

    [Fact]
    public void The_patch_and_kubeadm_configuration_make_the_whole_manifests_pod()
    {
        var patch = StaticPod.Load(DeployFiles.KubeadmPatch);
        var etcd = pod.Container("etcd");
        var patchedEtcd = patch.Container("etcd");

        Assert.Equal(Canonical(pod.Container("etcdshield")), Canonical(patch.Container("etcdshield")));
        Assert.All(patch.Volumes, v => Assert.Equal(Canonical(pod.Volume(StaticPod.Scalar(v, "name")!)), Canonical(v)));
        Assert.Equal(StaticPod.Scalar(etcd, "workingDir"), StaticPod.Scalar(patchedEtcd, "workingDir"));
        Assert.Subset(StaticPod.Mounts(etcd).ToHashSet(), StaticPod.Mounts(patchedEtcd).ToHashSet());
        Assert.Equal(["name", "workingDir", "volumeMounts"], ((YamlMappingNode)patchedEtcd).Children.Keys.Select(k => ((YamlScalarNode)k).Value));

        var stream = new YamlStream();
        using (var reader = new StreamReader(DeployFiles.KubeadmConfig))
        {
            stream.Load(reader);
        }

        var cluster = stream.Documents.Select(d => d.RootNode).Single(n => StaticPod.Scalar(n, "kind") == "ClusterConfiguration");
        var extraArgs = StaticPod.Sequence(StaticPod.Node(cluster, "etcd", "local")!, "extraArgs")
            .ToDictionary(a => StaticPod.Scalar(a, "name")!, a => StaticPod.Scalar(a, "value")!);
        Assert.Equal(new Dictionary<string, string> { ["listen-client-urls"] = Flags(etcd)["listen-client-urls"] }, extraArgs);
        Assert.All(
            stream.Documents.Select(d => d.RootNode).Where(n => StaticPod.Scalar(n, "kind") != "ClusterConfiguration"),
            n => Assert.Contains("/etc/kubernetes/patches", Canonical(n), StringComparison.Ordinal));
    }

    /// <summary>A container's <c>--name=value</c> arguments.</summary>
    private static Dictionary<string, string> Flags(YamlMappingNode container) =>
        StaticPod.CommandLine(container)
            .Where(a => a.StartsWith("--", StringComparison.Ordinal))
            .Select(a => a[2..].Split('=', 2))
            .ToDictionary(p => p[0], p => p.Length == 2 ? p[1] : "", StringComparer.Ordinal);

    /// <summary>A node's content with anchors resolved, for comparing two files' blocks.</summary>
    private static string Canonical(YamlNode node) => node switch
    {
        YamlScalarNode scalar => "'" + scalar.Value + "'",
        YamlSequenceNode sequence => "[" + string.Join(",", sequence.Children.Select(Canonical)) + "]",
        YamlMappingNode mapping => "{" + string.Join(",", mapping.Children.Select(c => Canonical(c.Key) + ":" + Canonical(c.Value))) + "}",
        _ => throw new InvalidOperationException(node.GetType().Name),
    };
}
