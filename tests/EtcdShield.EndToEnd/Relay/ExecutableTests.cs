using EtcdShield.Configuration;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// The built EtcdShield executable as an operator runs it: its help, its refusals to start (exit code 2 with a
/// message naming the flag to fix), and a real start on free ports in front of etcd that etcdctl can use and
/// that SIGTERM stops cleanly and promptly, open watches included.
/// </summary>
public sealed class ExecutableTests(TestPki pki) : IClassFixture<TestPki>
{
    private static readonly string Assembly = Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll");

    [Fact]
    public async Task Help_lists_every_flag_and_exits_0()
    {
        var help = await RunAsync("--help");

        Assert.Equal(0, help.ExitCode);
        Assert.Empty(help.StdErr);
        Assert.All(ServeCommandLine.Flags, flag => Assert.Contains("  --" + flag.Name, help.StdOut, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_a_key_provider_or_no_encryption_it_refuses_to_start_naming_no_encryption()
    {
        var refused = await RunAsync([.. ValidFlags(), "--upstream-endpoints", "http://127.0.0.1:2379"]);

        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("--no-encryption", refused.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("EtcdShield ready", refused.StdOut, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--no-such-flag", "--no-such-flag")]
    [InlineData("--listen-client-urls=http://127.0.0.1:1", "--listen-client-urls")]
    [InlineData("--max-request-bytes=lots", "--max-request-bytes")]
    public async Task A_bad_flag_makes_it_exit_2_naming_that_flag(string flag, string named)
    {
        var refused = await RunAsync([.. ValidFlags(), "--no-encryption", flag]);

        Assert.Equal(2, refused.ExitCode);
        Assert.StartsWith("etcdshield: ", refused.StdErr, StringComparison.Ordinal);
        Assert.Contains(named, refused.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Started_as_a_process_it_relays_etcdctl_to_etcd_and_stops_cleanly_on_sigterm()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        var directory = Directory.CreateTempSubdirectory("etcdshield-exe-").FullName;
        try
        {
            var ports = FreePort.Allocate(2);
            var clientUrl = $"https://127.0.0.1:{ports[0]}";
            await using var shield = BackgroundProcess.Start(DotnetHost(), [
                Assembly,
                .. ValidFlags(clientUrl),
                "--upstream-endpoints", etcd.ClientUrl,
                "--metrics-listen-url", $"http://127.0.0.1:{ports[1]}",
                "--encryption-key-file", ShieldServer.WriteDevelopmentKey(directory),
            ]);
            await shield.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            var etcdctl = new Etcdctl(clientUrl, pki.CaFile, ShieldServer.DefaultClient(pki));

            // From revision 1 of this fresh etcd, so the put below is seen whenever the watch is established.
            await using var watch = new EtcdctlTarget(clientUrl, pki.CaFile, ShieldServer.DefaultClient(pki)).Start("watch", "exe/k", "--rev=1");

            var put = await etcdctl.RunAsync("put", "exe/k", "through the executable");
            var get = await etcdctl.RunAsync("get", "exe/k", "--print-value-only");
            var stored = await new Etcdctl(etcd.ClientUrl).RunAsync("get", "exe/k", "--print-value-only");
            await watch.WaitForStdOutAsync(line => line == "through the executable", TimeSpan.FromSeconds(15));

            // The open watch does not hold the shutdown back (the host would wait 30 s for it).
            var stopped = await shield.TerminateAsync(TimeSpan.FromSeconds(20));

            Assert.True(put.Succeeded, put.ToString());
            Assert.Equal(["through the executable"], get.EnsureSuccess().StdOutLines);
            Assert.DoesNotContain("through the executable", stored.EnsureSuccess().StdOut, StringComparison.Ordinal);
            Assert.False(stopped.TimedOut, stopped.ToString());
            Assert.Equal(0, stopped.ExitCode);
            Assert.DoesNotContain(" fail: ", stopped.StdOut, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Everything the proxy needs except an upstream and a choice about encryption.</summary>
    private string[] ValidFlags(string listen = "https://127.0.0.1:1") =>
    [
        "--listen-client-urls", listen,
        "--cert-file", pki.ServerCert.CertFile,
        "--key-file", pki.ServerCert.KeyFile,
        "--trusted-ca-file", pki.CaFile,
        "--allow-cn", ShieldServer.ClientName,
    ];

    private static Task<CommandResult> RunAsync(params string[] arguments) =>
        ExternalCommand.RunAsync(DotnetHost(), [Assembly, .. arguments]);

    /// <summary>The dotnet host running these tests (the SDK exports it to test runs), else the one on PATH.</summary>
    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "/usr/bin/dotnet";
}
