using System.Net;
using System.Net.Sockets;
using EtcdShield.Checks;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.Tests.Checks;

// File modes are what these tests are about, and the proxy runs on Linux.
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ConfigurationCheckTests : IDisposable
{
    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    private static Uri ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");
    }

    private string DevelopmentKey()
    {
        var path = Path.Combine(_pki.Directory, "kek");
        File.WriteAllText(path, Convert.ToBase64String(new byte[32]));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    [Fact]
    public async Task Every_check_runs_after_a_failure_and_any_failure_exits_1()
    {
        var missingCert = Path.Combine(_pki.Directory, "missing.pem");
        var options = Checked.Serving(_pki) with { CertFile = missingCert, EncryptionKeyFile = DevelopmentKey(), UpstreamEndpoints = [ClosedPort()] };
        using var output = new StringWriter();

        var exit = await ConfigurationCheck.RunAsync(options, output, CancellationToken.None);

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(1, exit);
        Assert.Contains($"FAIL file: --cert-file {missingCert} cannot be read (no such file); fix the path or give this user read access", lines);
        Assert.Contains(lines, l => l.StartsWith("FAIL serving-cert: cannot load --cert-file", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("ok   client-ca:", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("ok   policy:", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("warn key-file:", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"FAIL etcd: etcd at --upstream-endpoints {options.UpstreamEndpoints[0]} does not answer (Unavailable", StringComparison.Ordinal));
        Assert.All(lines[..^1], l => Assert.Matches("^(ok   |warn |FAIL )[a-z0-9-]+: ", l));
        var failures = lines.Count(l => l.StartsWith("FAIL ", StringComparison.Ordinal));
        Assert.Matches($"^summary: \\d+ ok, \\d+ warn, {failures} fail$", lines[^1]);
    }

    [Fact]
    public async Task A_check_past_its_deadline_fails_by_name_and_the_next_ones_still_run()
    {
        // Both accept connections (the kernel's backlog) and never answer a byte: a hung plugin and a hung etcd.
        using var silentEtcd = new TcpListener(IPAddress.Loopback, 0);
        silentEtcd.Start();
        var kmsSocket = Path.Combine(_pki.Directory, "kms.sock");
        using var silentKms = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        silentKms.Bind(new UnixDomainSocketEndPoint(kmsSocket));
        silentKms.Listen();
        var options = Checked.Serving(_pki) with
        {
            KmsPluginEndpoint = "unix://" + kmsSocket,
            UpstreamEndpoints = [new Uri($"http://127.0.0.1:{((IPEndPoint)silentEtcd.LocalEndpoint).Port}")],
        };
        using var output = new StringWriter();

        var exit = await ConfigurationCheck.RunAsync(options, output, TimeSpan.FromSeconds(2), CancellationToken.None);

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(1, exit);
        Assert.Equal("FAIL kms: no answer within 2s; whatever it waits for (device, socket, network) is not responding", lines[^3]);
        Assert.Equal("FAIL etcd: no answer within 2s; whatever it waits for (device, socket, network) is not responding", lines[^2]);
        Assert.StartsWith("summary: ", lines[^1], StringComparison.Ordinal);
    }
}
