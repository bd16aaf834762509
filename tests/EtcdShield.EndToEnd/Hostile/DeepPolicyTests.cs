using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// Someone who can write the policy file (or an operator's tool gone wrong) replaces it with YAML nested 100,000
/// deep, then asks for a reload. The running executable must survive it: the reload fails, the last good policy
/// keeps deciding, /health says degraded, and the process stops only when told to.
/// </summary>
public sealed class DeepPolicyTests(TestPki pki) : IClassFixture<TestPki>
{
    private const int Depth = 100_000;
    private static readonly string Assembly = Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll");

    [Fact]
    public async Task A_policy_nested_100000_deep_at_reload_is_refused_and_the_last_good_policy_keeps_serving()
    {
        var etcd = await SharedEtcd.GetAsync();
        var directory = Directory.CreateTempSubdirectory("etcdshield-deep-").FullName;
        try
        {
            var policy = Path.Combine(directory, "policy.yaml");
            await File.WriteAllTextAsync(policy, """
                identities:
                  - name: deep-writer
                    match: { cn: deep-writer }
                    keys: [{ prefix: /deep/, permission: readwrite }]
                """);
            var writer = pki.IssueClient("deep-writer", "deep-writer");
            var ports = FreePort.Allocate(2);
            var clientUrl = $"https://127.0.0.1:{ports[0]}";
            var metricsUrl = $"http://127.0.0.1:{ports[1]}";
            await using var shield = BackgroundProcess.Start(DotnetHost(), [
                Assembly,
                "--listen-client-urls", clientUrl,
                "--cert-file", pki.ServerCert.CertFile,
                "--key-file", pki.ServerCert.KeyFile,
                "--trusted-ca-file", pki.CaFile,
                "--upstream-endpoints", etcd.ClientUrl,
                "--metrics-listen-url", metricsUrl,
                "--no-encryption",
                "--policy-file", policy,
                "--reload-interval", "1h",
            ]);
            await shield.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            var etcdctl = new Etcdctl(clientUrl, pki.CaFile, writer) { CommandTimeout = TimeSpan.FromSeconds(10) };
            (await etcdctl.RunAsync("put", "/deep/before", "x")).EnsureSuccess();

            await File.WriteAllTextAsync(policy + ".new", "identities: " + new string('[', Depth) + new string(']', Depth) + "\n");
            File.Move(policy + ".new", policy, overwrite: true);
            var hangup = await ExternalCommand.RunAsync("/bin/sh", ["-c", $"kill -HUP {shield.ProcessId}"]);
            await shield.WaitForStdOutAsync(line => line.Contains("Could not reload the policy", StringComparison.Ordinal), TimeSpan.FromSeconds(30));

            var after = await etcdctl.RunAsync("put", "/deep/after", "x");
            var outside = await etcdctl.RunAsync("put", "/elsewhere", "x");
            using var http = new HttpClient();
            var health = await http.GetStringAsync(new Uri(metricsUrl + "/health"));
            var metrics = await http.GetStringAsync(new Uri(metricsUrl + "/metrics"));
            var stopped = await shield.TerminateAsync(TimeSpan.FromSeconds(20));

            Assert.True(hangup.Succeeded, hangup.ToString());
            Assert.True(after.Succeeded, after.ToString());
            Assert.False(outside.Succeeded, outside.ToString());
            Assert.Contains("PermissionDenied", outside.StdErr, StringComparison.Ordinal);
            Assert.Contains("\"status\":\"degraded\"", health, StringComparison.Ordinal);
            Assert.Contains("policy not reloaded", health, StringComparison.Ordinal);
            Assert.Contains("nested deeper than", health, StringComparison.Ordinal);
            Assert.Contains("etcdshield_config_reloads_total{", metrics, StringComparison.Ordinal);
            Assert.Contains("result=\"failed\"", metrics, StringComparison.Ordinal);
            Assert.False(stopped.TimedOut, stopped.ToString());
            Assert.Equal(0, stopped.ExitCode);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The dotnet host running these tests (the SDK exports it to test runs), else the one on PATH.</summary>
    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "/usr/bin/dotnet";
}
