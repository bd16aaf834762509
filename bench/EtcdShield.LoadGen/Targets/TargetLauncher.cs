using EtcdShield.LoadGen.Infrastructure;

namespace EtcdShield.LoadGen.Targets;

/// <summary>
/// Starts one target on loopback, each time on a fresh etcd with an empty data directory: a target run never
/// inherits another's database size, compaction debt or page cache, which matters more for fairness than keeping
/// one etcd's state across targets.
/// </summary>
internal sealed class TargetLauncher
{
    private const string EtcdPath = "/usr/bin/etcd";

    // 8 GiB, etcd's maximum: without compaction a 16 KiB put run writes hundreds of MB, and hitting the default
    // 2 GiB quota would turn a throughput run into an alarm.
    private const string QuotaBytes = "8589934592";

    private readonly BenchPki _pki;
    private readonly ShieldBinary _shield;
    private readonly KeyProviderSetup _keys;
    private readonly string _dataRoot;
    private readonly string _logDirectory;
    private readonly IReadOnlyList<ShieldVariant> _variants;

    public TargetLauncher(BenchPki pki, ShieldBinary shield, KeyProviderSetup keys, string dataRoot, string logDirectory, IReadOnlyList<ShieldVariant>? variants = null)
    {
        _variants = variants ?? [];
        _pki = pki;
        _shield = shield;
        _keys = keys;
        _dataRoot = dataRoot;
        _logDirectory = logDirectory;
    }

    /// <param name="tag">Names this target run's logs, e.g. "r1-shield-encrypted".</param>
    public Task<RunningTarget> StartAsync(TargetKind kind, string tag) => StartAsync(new BenchTarget(kind), tag);

    /// <param name="target">The kind, and the --shield-variant whose flags and variables its proxy gets.</param>
    /// <param name="tag">Names this target run's logs, e.g. "r1-shield-encrypted+nosharing".</param>
    public async Task<RunningTarget> StartAsync(BenchTarget target, string tag)
    {
        var kind = target.Kind;
        var variant = target.Variant is null ? null : _variants.First(v => v.Name == target.Variant);
        var directory = Path.Combine(_dataRoot, tag);
        Directory.CreateDirectory(directory);
        var mtls = kind == TargetKind.EtcdMtls;
        ServerProcess? etcd = null;
        try
        {
            (etcd, var urls) = await StartEtcdAsync(directory, plaintext: !mtls, mutualTls: mtls, Path.Combine(_logDirectory, tag + "-etcd.log")).ConfigureAwait(false);
            var etcdUrl = urls[0];
            if (!kind.HasProxy())
            {
                return new RunningTarget(kind, etcdUrl, etcd, null, directory);
            }

            var (proxy, endpoint) = await StartProxyAsync(kind, directory, etcdUrl, tag, variant: variant).ConfigureAwait(false);
            return new RunningTarget(kind, endpoint, etcd, proxy, directory, target.Variant);
        }
        catch
        {
            etcd?.Dispose();
            throw;
        }
    }

    /// <summary>One etcd with a plaintext and a mutual-TLS client listener, for targets started with <see cref="StartOnAsync(TargetKind, string, SharedEtcd)"/>.</summary>
    /// <param name="launched">Called with each exec and the client URLs it will serve (plaintext first), before it is ready.</param>
    public async Task<SharedEtcd> StartSharedEtcdAsync(string tag, Action<ServerProcess, IReadOnlyList<Uri>>? launched = null)
    {
        var directory = Path.Combine(_dataRoot, tag);
        Directory.CreateDirectory(directory);
        var (etcd, urls) = await StartEtcdAsync(directory, plaintext: true, mutualTls: true, Path.Combine(_logDirectory, tag + "-etcd.log"), launched).ConfigureAwait(false);
        return new SharedEtcd(etcd, urls[0], urls[1], directory);
    }

    /// <summary>A target in front of <paramref name="etcd"/>, which it does not own: disposing it stops only its proxy.</summary>
    public async Task<RunningTarget> StartOnAsync(TargetKind kind, string tag, SharedEtcd etcd) => await StartOnAsync(kind, tag, etcd, _shield, launched: null).ConfigureAwait(false);

    /// <param name="shield">Which build of the proxy (the start-up scenario compares the JIT build with the published one).</param>
    /// <param name="launched">Called with the proxy's exec and its endpoint before it is ready.</param>
    public async Task<RunningTarget> StartOnAsync(TargetKind kind, string tag, SharedEtcd etcd, ShieldBinary shield, Action<ServerProcess, Uri>? launched)
    {
        if (!kind.HasProxy())
        {
            return new RunningTarget(kind, kind == TargetKind.EtcdMtls ? etcd.MutualTls : etcd.Plaintext, etcd.Process, null, directory: null);
        }

        var directory = Path.Combine(_dataRoot, tag);
        Directory.CreateDirectory(directory);
        var (proxy, endpoint) = await StartProxyAsync(kind, directory, etcd.Plaintext, tag, shield, launched).ConfigureAwait(false);
        return new RunningTarget(kind, endpoint, etcd.Process, proxy, directory: null);
    }

    private async Task<(ServerProcess Proxy, Uri Endpoint)> StartProxyAsync(
        TargetKind kind, string directory, Uri etcdUrl, string tag, ShieldBinary? shield = null, Action<ServerProcess, Uri>? launched = null, ShieldVariant? variant = null)
    {
        shield ??= _shield;
        IReadOnlyList<string> variantArguments = variant?.Arguments ?? [];
        var variantEnvironment = variant?.Environment ?? new Dictionary<string, string>();

        var proxyLog = Path.Combine(_logDirectory, tag + "-proxy.log");
        var proxyPort = FreePorts.Take(1)[0];
        var endpoint = new Uri("https://127.0.0.1:" + proxyPort);
        Action<ServerProcess>? onExec = launched is null ? null : p => launched(p, endpoint);
        var proxy = kind switch
        {
            TargetKind.GrpcProxy => await StartGrpcProxyAsync(directory, etcdUrl, proxyPort, proxyLog, onExec).ConfigureAwait(false),
            TargetKind.ShieldPlain => await shield.StartAsync(
                "EtcdShield --no-encryption", _pki, etcdUrl, ["--no-encryption", .. variantArguments], variantEnvironment, proxyLog, proxyPort, onExec).ConfigureAwait(false),
            _ => await shield.StartAsync(
                "EtcdShield encrypting", _pki, etcdUrl, [.. _keys.Arguments, .. variantArguments], Merged(_keys.Environment, variantEnvironment), proxyLog, proxyPort, onExec).ConfigureAwait(false),
        };
        return (proxy, endpoint);
    }

    private static Dictionary<string, string> Merged(IReadOnlyDictionary<string, string> first, IReadOnlyDictionary<string, string> then)
    {
        var merged = new Dictionary<string, string>(first);
        foreach (var (key, value) in then)
        {
            merged[key] = value;
        }

        return merged;
    }

    /// <returns>The client URLs asked for: the plaintext one first.</returns>
    private async Task<(ServerProcess Etcd, IReadOnlyList<Uri> Urls)> StartEtcdAsync(
        string directory, bool plaintext, bool mutualTls, string logFile, Action<ServerProcess, IReadOnlyList<Uri>>? launched = null)
    {
        // A port can be taken between choosing and binding it; try again on fresh ports rather than fail the run.
        for (var attempt = 1; ; attempt++)
        {
            var ports = FreePorts.Take(3);
            var clients = new List<string>();
            if (plaintext)
            {
                clients.Add($"http://127.0.0.1:{ports[0]}");
            }

            if (mutualTls)
            {
                clients.Add($"https://127.0.0.1:{ports[1]}");
            }

            var client = string.Join(',', clients);
            var peer = $"http://127.0.0.1:{ports[2]}";
            List<string> arguments =
            [
                "--name", "bench",
                "--data-dir", Path.Combine(directory, "etcd"),
                "--listen-client-urls", client,
                "--advertise-client-urls", client,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "bench=" + peer,
                "--initial-cluster-token", "bench-" + Guid.NewGuid().ToString("N"),
                "--quota-backend-bytes", QuotaBytes,
            ];
            if (mutualTls)
            {
                // --client-cert-auth applies to the https listener only; the plaintext one stays plaintext.
                arguments.AddRange([
                    "--cert-file", _pki.ServerCertFile, "--key-file", _pki.ServerKeyFile,
                    "--trusted-ca-file", _pki.CaFile, "--client-cert-auth",
                ]);
            }

            try
            {
                Uri[] urls = [.. clients.Select(c => new Uri(c))];
                var etcd = await ServerProcess.StartAsync(
                    mutualTls ? "etcd (mTLS)" : "etcd", EtcdPath, arguments, logFile, "ready to serve client requests", TimeSpan.FromSeconds(30),
                    launched: launched is null ? null : p => launched(p, urls)).ConfigureAwait(false);
                return (etcd, urls);
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                Directory.Delete(Path.Combine(directory, "etcd"), recursive: true);
            }
        }
    }

    private async Task<ServerProcess> StartGrpcProxyAsync(string directory, Uri etcd, int port, string logFile, Action<ServerProcess>? launched)
    {
        string[] arguments =
        [
            "grpc-proxy", "start",
            "--endpoints", $"{etcd.Host}:{etcd.Port}",
            "--listen-addr", "127.0.0.1:" + port,
            // A trusted CA makes the proxy require and verify client certificates, like etcd's --client-cert-auth.
            "--cert-file", _pki.ServerCertFile,
            "--key-file", _pki.ServerKeyFile,
            "--trusted-ca-file", _pki.CaFile,
            "--data-dir", Path.Combine(directory, "grpc-proxy"),
        ];
        return await ServerProcess.StartAsync("etcd grpc-proxy", EtcdPath, arguments, logFile, "started gRPC proxy", TimeSpan.FromSeconds(30), launched: launched).ConfigureAwait(false);
    }
}
