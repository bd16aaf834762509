using System.Net;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// Certificates where kubeadm puts them (<c>pki/etcd/ca.crt</c>, <c>server.crt</c>, <c>peer.crt</c>,
/// <c>healthcheck-client.crt</c>, <c>pki/apiserver-etcd-client.crt</c>, keys 0600 beside them), made at test time by
/// <see cref="TestPki"/> with kubeadm's names and usages: etcd's server certificate for the node's name, localhost,
/// 127.0.0.1, ::1 and the node's address, with clientAuth too, as kubeadm issues it.
/// </summary>
internal static class KubeadmPki
{
    public const string ApiServerClientName = "kube-apiserver-etcd-client";
    public const string HealthCheckClientName = "kube-etcd-healthcheck-client";

    /// <param name="pkiDirectory">Where /etc/kubernetes/pki is mapped.</param>
    public static void Write(TestPki pki, string pkiDirectory, string nodeName, IPAddress nodeAddress)
    {
        var server = pki.IssueServer("kubeadm-etcd-server", nodeName, [nodeName, "localhost"], [nodeAddress, IPAddress.Loopback, IPAddress.IPv6Loopback]);
        var peer = pki.IssueServer("kubeadm-etcd-peer", nodeName, [nodeName, "localhost"], [nodeAddress, IPAddress.Loopback, IPAddress.IPv6Loopback]);
        var healthCheck = pki.IssueClient("kubeadm-healthcheck-client", HealthCheckClientName);
        var apiServer = pki.IssueClient("kubeadm-apiserver-etcd-client", ApiServerClientName);

        var etcd = Directory.CreateDirectory(Path.Combine(pkiDirectory, "etcd")).FullName;
        Place(pki.CaFile, Path.Combine(etcd, "ca.crt"));
        Place(pki.Authority.KeyFile, Path.Combine(etcd, "ca.key"));
        Place(server, Path.Combine(etcd, "server"));
        Place(peer, Path.Combine(etcd, "peer"));
        Place(healthCheck, Path.Combine(etcd, "healthcheck-client"));
        Place(apiServer, Path.Combine(pkiDirectory, "apiserver-etcd-client"));
    }

    public static CertificatePaths ApiServerClient(string pkiDirectory) =>
        new(Path.Combine(pkiDirectory, "apiserver-etcd-client.crt"), Path.Combine(pkiDirectory, "apiserver-etcd-client.key"));

    public static CertificatePaths HealthCheckClient(string pkiDirectory) =>
        new(Path.Combine(pkiDirectory, "etcd", "healthcheck-client.crt"), Path.Combine(pkiDirectory, "etcd", "healthcheck-client.key"));

    public static string EtcdCa(string pkiDirectory) => Path.Combine(pkiDirectory, "etcd", "ca.crt");

    private static void Place(CertificatePaths paths, string stem)
    {
        Place(paths.CertFile, stem + ".crt");
        Place(paths.KeyFile, stem + ".key");
    }

    private static void Place(string from, string to)
    {
        File.Copy(from, to);
        if (!OperatingSystem.IsWindows())
        {
            // kubeadm writes keys root-only; certificates are world-readable.
            File.SetUnixFileMode(to, to.EndsWith(".key", StringComparison.Ordinal)
                ? UnixFileMode.UserRead | UnixFileMode.UserWrite
                : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
    }
}
