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

    public TargetLauncher(BenchPki pki, ShieldBinary shield, KeyProviderSetup keys, string dataRoot, string logDirectory)
    {
        _pki = pki;
        _shield = shield;
        _keys = keys;
        _dataRoot = dataRoot;
        _logDirectory = logDirectory;
    }

    /// <param name="tag">Names this target run's logs, e.g. "r1-shield-encrypted".</param>
    public async Task<RunningTarget> StartAsync(TargetKind kind, string tag)
    {
        var directory = Path.Combine(_dataRoot, tag);
        Directory.CreateDirectory(directory);
        var mtls = kind == TargetKind.EtcdMtls;
        ServerProcess? etcd = null;
        try
        {
            (etcd, var etcdUrl) = await StartEtcdAsync(directory, mtls, Path.Combine(_logDirectory, tag + "-etcd.log")).ConfigureAwait(false);
            if (!kind.HasProxy())
            {
                return new RunningTarget(kind, etcdUrl, etcd, null, directory);
            }

            var proxyLog = Path.Combine(_logDirectory, tag + "-proxy.log");
            var proxyPort = FreePorts.Take(1)[0];
            var proxy = kind switch
            {
                TargetKind.GrpcProxy => await StartGrpcProxyAsync(directory, etcdUrl, proxyPort, proxyLog).ConfigureAwait(false),
                TargetKind.ShieldPlain => await _shield.StartAsync(
                    "EtcdShield --no-encryption", _pki, etcdUrl, ["--no-encryption"], new Dictionary<string, string>(), proxyLog, proxyPort).ConfigureAwait(false),
                _ => await _shield.StartAsync(
                    "EtcdShield encrypting", _pki, etcdUrl, _keys.Arguments, _keys.Environment, proxyLog, proxyPort).ConfigureAwait(false),
            };
            return new RunningTarget(kind, new Uri("https://127.0.0.1:" + proxyPort), etcd, proxy, directory);
        }
        catch
        {
            etcd?.Dispose();
            throw;
        }
    }

    private async Task<(ServerProcess Etcd, Uri Url)> StartEtcdAsync(string directory, bool mtls, string logFile)
    {
        // A port can be taken between choosing and binding it; try again on fresh ports rather than fail the run.
        for (var attempt = 1; ; attempt++)
        {
            var ports = FreePorts.Take(2);
            var client = $"{(mtls ? "https" : "http")}://127.0.0.1:{ports[0]}";
            var peer = $"http://127.0.0.1:{ports[1]}";
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
            if (mtls)
            {
                arguments.AddRange([
                    "--cert-file", _pki.ServerCertFile, "--key-file", _pki.ServerKeyFile,
                    "--trusted-ca-file", _pki.CaFile, "--client-cert-auth",
                ]);
            }

            try
            {
                var etcd = await ServerProcess.StartAsync(
                    mtls ? "etcd (mTLS)" : "etcd", EtcdPath, arguments, logFile, "ready to serve client requests", TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                return (etcd, new Uri(client));
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                Directory.Delete(Path.Combine(directory, "etcd"), recursive: true);
            }
        }
    }

    private async Task<ServerProcess> StartGrpcProxyAsync(string directory, Uri etcd, int port, string logFile)
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
        return await ServerProcess.StartAsync("etcd grpc-proxy", EtcdPath, arguments, logFile, "started gRPC proxy", TimeSpan.FromSeconds(30)).ConfigureAwait(false);
    }
}
