using EtcdShield.LoadGen.Infrastructure;

namespace EtcdShield.LoadGen.Targets;

/// <summary>
/// The built proxy and the flags every bench instance shares: the framework-dependent build
/// (src/EtcdShield/bin/Release/net10.0/EtcdShield.dll, run as `dotnet EtcdShield.dll`, as the test suite runs it) or
/// the program deploy/publish.sh writes (Native AOT, run as itself, as every deploy layout runs it).
/// </summary>
internal sealed class ShieldBinary
{
    private readonly IReadOnlyDictionary<string, string> _environment;
    private readonly IReadOnlyList<string> _arguments;

    /// <param name="path">EtcdShield.dll (started with dotnet) or a published EtcdShield executable.</param>
    /// <param name="environment">Added to every start, e.g. DOTNET_* runtime knobs under test; empty normally.</param>
    /// <param name="name">What the report calls this build: "jit" for the dll, "published" for deploy/publish.sh's program.</param>
    /// <param name="arguments">Added to every start's command line after the bench's own flags (--shield-args); empty normally.</param>
    public ShieldBinary(string path, IReadOnlyDictionary<string, string>? environment = null, string? name = null, IReadOnlyList<string>? arguments = null)
    {
        DllPath = path;
        _environment = environment ?? new Dictionary<string, string>();
        _arguments = arguments ?? [];
        Name = name ?? (IsPublished ? "published" : "jit");
    }

    public string Name { get; }

    public string DllPath { get; }

    public bool IsPublished => !DllPath.EndsWith(".dll", StringComparison.Ordinal);

    /// <summary>How it runs, for the report.</summary>
    public string Description => (IsPublished
        ? $"{Name}: {DllPath} run as itself{(Name == "published" ? " (deploy/publish.sh: Native AOT)" : "")}"
        : $"{Name}: dotnet {DllPath} (framework-dependent, JIT)")
        + (_environment.Count > 0 ? ", with " + string.Join(' ', _environment.Select(e => $"{e.Key}={e.Value}")) : "")
        + (_arguments.Count > 0 ? ", flags " + string.Join(' ', _arguments) : "");

    public async Task<ServerProcess> StartAsync(
        string name,
        BenchPki pki,
        Uri upstream,
        IEnumerable<string> keyArguments,
        IReadOnlyDictionary<string, string> environment,
        string logFile,
        int? listenPort = null,
        Action<ServerProcess>? launched = null)
    {
        var ports = FreePorts.Take(2);
        var port = listenPort ?? ports[0];
        string[] arguments =
        [
            .. IsPublished ? Array.Empty<string>() : [DllPath],
            "--listen-client-urls", $"https://127.0.0.1:{port}",
            "--cert-file", pki.ServerCertFile,
            "--key-file", pki.ServerKeyFile,
            "--trusted-ca-file", pki.CaFile,
            "--upstream-endpoints", upstream.ToString().TrimEnd('/'),
            "--allow-cn", BenchPki.ClientCommonName,
            // The watch workload's 1000 (or 10,000) streams stand for as many clients but share one certificate and
            // --connections connections, so one identity holds them all, 2,500 per connection at 10,000 watchers; the
            // defaults (1000 each) would refuse them.
            "--max-streams-per-identity", "100000",
            "--max-streams-per-connection", "100000",
            "--metrics-listen-url", $"http://127.0.0.1:{ports[1]}",
            // The ready line is logged at Information; the proxy logs nothing per request at that level.
            "--log-level", "Information",
            // --shield-args before the caller's (the KEK's, then a --shield-variant's), so the most specific comes last.
            .. _arguments,
            .. keyArguments,
        ];

        // The proxy runs as deployed: the Release build with the GC settings of its own runtimeconfig.json.
        var merged = new Dictionary<string, string>(_environment);
        foreach (var (key, value) in environment)
        {
            merged[key] = value;
        }

        return await ServerProcess.StartAsync(
            name, IsPublished ? DllPath : "dotnet", arguments, logFile, "EtcdShield ready", TimeSpan.FromSeconds(60), merged, launched).ConfigureAwait(false);
    }
}
