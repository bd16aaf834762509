namespace EtcdShield.EndToEnd.Deploy;

/// <summary>The layouts under deploy/ as they are in the repository (they are not copied to the test output).</summary>
internal static class DeployFiles
{
    private static readonly Lazy<string> Root = new(FindRepositoryRoot);

    public static string RepositoryRoot => Root.Value;

    public static string KubeadmManifest => Path.Combine(RepositoryRoot, "deploy", "kubernetes", "etcd.yaml");

    public static string KubeadmPatch => Path.Combine(RepositoryRoot, "deploy", "kubernetes", "patches", "etcd+strategic.yaml");

    public static string KubeadmConfig => Path.Combine(RepositoryRoot, "deploy", "kubernetes", "kubeadm-config.yaml");

    public static string KubernetesPolicy => Path.Combine(RepositoryRoot, "deploy", "kubernetes", "policy.yaml");

    public static string ExamplePolicy => Path.Combine(RepositoryRoot, "deploy", "policy.example.yaml");

    public static string ShieldUnit => Path.Combine(RepositoryRoot, "deploy", "systemd", "etcdshield.service");

    public static string EtcdDropIn => Path.Combine(RepositoryRoot, "deploy", "systemd", "etcd.service.d", "etcdshield.conf");

    public static string ShieldDefaults => Path.Combine(RepositoryRoot, "deploy", "systemd", "etcdshield.default");

    /// <summary>Debian's own etcd unit (etcd-server), which the drop-in changes.</summary>
    public static string DebianEtcdUnit => "/lib/systemd/system/etcd.service";

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "EtcdShield.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No EtcdShield.sln above {AppContext.BaseDirectory}: the deploy tests read deploy/ from the repository.");
    }
}
