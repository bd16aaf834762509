using EtcdShield.Configuration;
using EtcdShield.Hosting;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// EtcdShield started in-process from command-line flags, exactly as the executable parses them, on free
/// loopback ports, with its log captured. Any Error it logs fails the test when it is disposed, unless the
/// test said it expects errors.
/// </summary>
internal sealed class ShieldServer : IAsyncDisposable
{
    /// <summary>The common name the default test client certificate carries and the proxy allows.</summary>
    public const string ClientName = "etcd-client";

    private readonly WebApplication _app;
    private readonly string _directory;

    private ShieldServer(WebApplication app, string directory, string clientUrl, string metricsUrl, TestLogSink logs, IReadOnlyList<string> flags)
    {
        _app = app;
        _directory = directory;
        ClientUrl = clientUrl;
        MetricsUrl = metricsUrl;
        Logs = logs;
        Flags = flags;
    }

    public string ClientUrl { get; }

    public string MetricsUrl { get; }

    public TestLogSink Logs { get; }

    public IReadOnlyList<string> Flags { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Set by tests that provoke errors on purpose.</summary>
    public bool ErrorsExpected { get; set; }

    /// <param name="encrypt">Encrypt with a development key file made for this server (unless
    /// <paramref name="flags"/> names a key provider); false runs with --no-encryption.</param>
    /// <param name="flags">More flags, appended after the defaults so they can override single-valued ones.</param>
    public static async Task<ShieldServer> StartAsync(
        TestPki pki,
        string upstreamEndpoints,
        bool encrypt = true,
        IEnumerable<string>? flags = null,
        ITestOutputHelper? output = null)
    {
        var directory = Directory.CreateTempSubdirectory("etcdshield-server-").FullName;
        var ports = FreePort.Allocate(2);
        var clientUrl = $"https://127.0.0.1:{ports[0]}";
        var metricsUrl = $"http://127.0.0.1:{ports[1]}";
        var extra = flags?.ToList() ?? [];
        var args = new List<string>
        {
            "--listen-client-urls", clientUrl,
            "--cert-file", pki.ServerCert.CertFile,
            "--key-file", pki.ServerCert.KeyFile,
            "--trusted-ca-file", pki.CaFile,
            "--upstream-endpoints", upstreamEndpoints,
            "--allow-cn", ClientName,
            "--metrics-listen-url", metricsUrl,
        };
        if (!encrypt)
        {
            args.Add("--no-encryption");
        }
        else if (!NamesKeyProvider(extra))
        {
            args.Add("--encryption-key-file");
            args.Add(WriteDevelopmentKey(directory));
        }

        args.AddRange(extra);

        var options = ServeCommandLine.ToOptions(ShieldCommandLine.ParseFlags(args, ServeCommandLine.Flags));
        var logs = new TestLogSink(output);
        var app = ShieldHost.Build(options, logging => logging.AddProvider(logs));
        await app.StartAsync().ConfigureAwait(false);
        return new ShieldServer(app, directory, clientUrl, metricsUrl, logs, args);
    }

    /// <summary>Whether <paramref name="flags"/> choose a key provider themselves, so no development key is added.</summary>
    public static bool NamesKeyProvider(IEnumerable<string> flags) =>
        flags.Any(f => f.StartsWith("--encryption-key-file", StringComparison.Ordinal) || f.StartsWith("--pkcs11", StringComparison.Ordinal) || f.StartsWith("--kms", StringComparison.Ordinal));

    /// <summary>A development key-encryption key file: 32 random bytes, base64, readable by the owner only.</summary>
    public static string WriteDevelopmentKey(string directory)
    {
        var path = Path.Combine(directory, $"kek-{Guid.NewGuid():N}.b64");
        File.WriteAllText(path, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        return path;
    }

    /// <summary>
    /// What this proxy alone records on <paramref name="instrument"/> of <paramref name="meter"/> from now on. Its own
    /// meter factory tells its meters apart from those of other proxies in the test process; its Prometheus endpoint
    /// cannot (the exporter takes every meter of the name, and another proxy's disposal retires the shared streams).
    /// </summary>
    public MetricCollector<T> Collect<T>(string meter, string instrument)
        where T : struct =>
        new(_app.Services.GetRequiredService<IMeterFactory>(), meter, instrument);

    /// <summary>etcdctl pointed at the proxy with the given (or the default allowed) client certificate.</summary>
    public Etcdctl Etcdctl(TestPki pki, CertificatePaths? client = null, TimeSpan? commandTimeout = null) =>
        new(ClientUrl, pki.CaFile, client ?? DefaultClient(pki)) { CommandTimeout = commandTimeout };

    /// <summary>The allowed client certificate for <paramref name="pki"/>, issued once and reused.</summary>
    public static CertificatePaths DefaultClient(TestPki pki)
    {
        var cert = Path.Combine(pki.Directory, "default-client.pem");
        return File.Exists(cert)
            ? new CertificatePaths(cert, Path.Combine(pki.Directory, "default-client-key.pem"))
            : pki.IssueClient("default-client", ClientName);
    }

    /// <summary>How long the proxy is given to stop and release its services: its shutdown timeout (10 s) and much more.</summary>
    private static readonly TimeSpan StopLimit = TimeSpan.FromSeconds(60);

    public async ValueTask DisposeAsync()
    {
        // Bounded, so that a proxy that cannot stop (once, a deadlock among the watch locks left the hub's dispose
        // waiting for ever) fails the test that disposes it instead of hanging the whole run.
        try
        {
            await _app.StopAsync().WaitAsync(StopLimit).ConfigureAwait(false);
            await _app.DisposeAsync().AsTask().WaitAsync(StopLimit).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"The proxy did not stop within {StopLimit.TotalSeconds:0} s: something in it waits for ever (dotnet-stack report -p {Environment.ProcessId} shows what).", e);
        }

        Directory.Delete(_directory, recursive: true);
        if (!ErrorsExpected)
        {
            Logs.AssertNoErrors();
        }
    }
}
