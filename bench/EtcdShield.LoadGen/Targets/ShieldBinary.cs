using EtcdShield.LoadGen.Infrastructure;

namespace EtcdShield.LoadGen.Targets;

/// <summary>The built proxy (src/EtcdShield/bin/Release/net10.0/EtcdShield.dll) and the flags every bench instance shares.</summary>
internal sealed class ShieldBinary
{
    public ShieldBinary(string dllPath) => DllPath = dllPath;

    public string DllPath { get; }

    public async Task<ServerProcess> StartAsync(
        string name,
        BenchPki pki,
        Uri upstream,
        IEnumerable<string> keyArguments,
        IReadOnlyDictionary<string, string> environment,
        string logFile,
        int? listenPort = null)
    {
        var ports = FreePorts.Take(2);
        var port = listenPort ?? ports[0];
        string[] arguments =
        [
            DllPath,
            "--listen-client-urls", $"https://127.0.0.1:{port}",
            "--cert-file", pki.ServerCertFile,
            "--key-file", pki.ServerKeyFile,
            "--trusted-ca-file", pki.CaFile,
            "--upstream-endpoints", upstream.ToString().TrimEnd('/'),
            "--allow-cn", BenchPki.ClientCommonName,
            // The watch workload's 1000 streams stand for 1000 clients but share one certificate, so one identity
            // holds them all; the default limit (1000) would leave no room for a round's stragglers.
            "--max-streams-per-identity", "100000",
            "--metrics-listen-url", $"http://127.0.0.1:{ports[1]}",
            // The ready line is logged at Information; the proxy logs nothing per request at that level.
            "--log-level", "Information",
            .. keyArguments,
        ];

        // The proxy runs as deployed: the Release build with the GC settings of its own runtimeconfig.json.
        return await ServerProcess.StartAsync(name, "dotnet", arguments, logFile, "EtcdShield ready", TimeSpan.FromSeconds(60), environment).ConfigureAwait(false);
    }
}
