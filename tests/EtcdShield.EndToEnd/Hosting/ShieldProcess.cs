using System.Globalization;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Hosting;

/// <summary>
/// The built executable (<c>dotnet EtcdShield.dll</c>) in front of one etcd, on free ports, with encryption under a
/// development key and <c>NOTIFY_SOCKET</c> pointing at a datagram socket this fixture binds in its directory, as a
/// service manager would.
/// </summary>
internal sealed class ShieldProcess : IAsyncDisposable
{
    private static readonly string Assembly = Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll");

    private readonly TestPki _pki;
    private readonly string _directory;

    private ShieldProcess(TestPki pki, string directory, NotifySocket notify, BackgroundProcess process, string clientUrl, string metricsUrl)
    {
        _pki = pki;
        _directory = directory;
        Notify = notify;
        Process = process;
        ClientUrl = clientUrl;
        MetricsUrl = metricsUrl;
    }

    public NotifySocket Notify { get; }

    public BackgroundProcess Process { get; }

    public string ClientUrl { get; }

    public string MetricsUrl { get; }

    public static ShieldProcess Start(TestPki pki, string upstream, params string[] extraFlags)
    {
        var directory = Directory.CreateTempSubdirectory("etcdshield-lifecycle-").FullName;
        var socketPath = Path.Combine(directory, "notify");
        var notify = new NotifySocket(socketPath);
        var ports = FreePort.Allocate(2);
        var clientUrl = $"https://127.0.0.1:{ports[0]}";
        var metricsUrl = $"http://127.0.0.1:{ports[1]}";
        var process = BackgroundProcess.Start(DotnetHost(), [
            Assembly,
            "--listen-client-urls", clientUrl,
            "--cert-file", pki.ServerCert.CertFile,
            "--key-file", pki.ServerCert.KeyFile,
            "--trusted-ca-file", pki.CaFile,
            "--allow-cn", ShieldServer.ClientName,
            "--upstream-endpoints", upstream,
            "--metrics-listen-url", metricsUrl,
            // A development key unless the test names its own key provider.
            .. ShieldServer.NamesKeyProvider(extraFlags)
                ? Array.Empty<string>()
                : ["--encryption-key-file", ShieldServer.WriteDevelopmentKey(directory)],
            .. extraFlags,
        ], new Dictionary<string, string?> { ["NOTIFY_SOCKET"] = socketPath });
        return new ShieldProcess(pki, directory, notify, process, clientUrl, metricsUrl);
    }

    /// <summary>The next notification the proxy sent, waiting for it up to <paramref name="timeout"/>.</summary>
    public async Task<string> NextNotificationAsync(TimeSpan timeout)
    {
        try
        {
            return await Notify.NextAsync(timeout);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; the proxy wrote:\n{Process.StdOut}\n{Process.StdErr}", e);
        }
    }

    /// <summary>A gRPC channel of its own to the proxy over mutual TLS, as <paramref name="client"/> (default: the allowed client).</summary>
    public GrpcChannel Channel(CertificatePaths? client = null)
    {
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(X509Certificate2.CreateFromPem(File.ReadAllText(_pki.CaFile)));
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = [(client ?? ShieldServer.DefaultClient(_pki)).LoadWithPrivateKey()],
                CertificateChainPolicy = policy,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            },
        };
        return GrpcChannel.ForAddress(ClientUrl, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
    }

    public async Task<(int Status, string Body)> GetAsync(string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var response = await http.GetAsync(new Uri(MetricsUrl + path));
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Sends SIGTERM and returns at once; <see cref="BackgroundProcess.WaitForExitAsync"/> awaits the exit.</summary>
    public Task TerminateAsync() => ExternalCommand.RunAsync("/bin/kill", ["-TERM", Process.ProcessId.ToString(CultureInfo.InvariantCulture)]);

    public async ValueTask DisposeAsync()
    {
        await Process.DisposeAsync();
        Notify.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>Sends <paramref name="signal"/> (STOP, CONT) to the etcd whose data directory is <paramref name="etcd"/>'s.</summary>
    public static Task SignalAsync(EtcdProcess etcd, string signal) =>
        ExternalCommand.RunAsync("/bin/kill", ["-" + signal, ProcessIdOf(etcd).ToString(CultureInfo.InvariantCulture)]);

    // EtcdProcess keeps its process to itself; its data directory is unique to it, and on its command line.
    private static int ProcessIdOf(EtcdProcess etcd) =>
        System.Diagnostics.Process.GetProcessesByName("etcd")
            .Single(p => File.ReadAllText($"/proc/{p.Id}/cmdline").Contains(etcd.DataDir, StringComparison.Ordinal)).Id;

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "/usr/bin/dotnet";
}
