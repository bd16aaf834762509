using System.Globalization;
using System.Text.RegularExpressions;
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
    internal static readonly string Assembly = Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll");

    [Fact]
    public async Task Help_lists_every_flag_and_exits_0()
    {
        var help = await RunAsync("--help");

        Assert.Equal(0, help.ExitCode);
        Assert.Empty(help.StdErr);
        Assert.All(ServeCommandLine.Flags, flag => Assert.Contains("  --" + flag.Name, help.StdOut, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Version_prints_the_version_the_commit_and_the_runtime_as_etcd_does_and_exits_0()
    {
        var version = await RunAsync("--version");

        Assert.Equal(0, version.ExitCode);
        Assert.Empty(version.StdErr);
        Assert.Matches(@"^EtcdShield Version: \d+\.\d+\.\d+", version.StdOutLines[0]);
        Assert.StartsWith("Git SHA: ", version.StdOutLines[1], StringComparison.Ordinal);
        Assert.Equal($".NET Version: {Environment.Version}", version.StdOutLines[2]);
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
    public async Task Every_problem_is_reported_at_once_one_line_each()
    {
        var refused = await RunAsync("--no-such-flag", "--max-request-bytes=lots", "--listen-client-urls", "http://127.0.0.1:1", "--no-encryption");

        var lines = refused.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, refused.ExitCode);
        Assert.All(lines, line => Assert.StartsWith("etcdshield: ", line, StringComparison.Ordinal));
        Assert.Contains("etcdshield: unknown flag --no-such-flag (see --help)", lines);
        Assert.Contains(lines, line => line.StartsWith("etcdshield: --max-request-bytes must be a whole number", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.Contains("must be https", StringComparison.Ordinal));
        Assert.Contains("etcdshield: --cert-file is required", lines);
        Assert.Contains(lines, line => line.StartsWith("etcdshield: no client identity is allowed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Check_takes_serves_flags_and_fails_each_invalid_option_on_its_own_line()
    {
        var check = await RunAsync("check", "--listen-client-urls", "https://127.0.0.1:1", "--no-encryption", "--cert-file", "/no/such.pem");
        var help = await RunAsync("check", "--help");

        Assert.Equal(1, check.ExitCode);
        Assert.Contains("FAIL --cert-file /no/such.pem: file not found", check.StdOut, StringComparison.Ordinal);
        Assert.Contains("FAIL --key-file is required", check.StdOut, StringComparison.Ordinal);
        Assert.Equal(0, help.ExitCode);
        Assert.All(ServeCommandLine.Flags, flag => Assert.Contains("  --" + flag.Name, help.StdOut, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Started_as_a_process_it_relays_etcdctl_to_etcd_and_stops_cleanly_on_sigterm()
    {
        var etcd = await SharedEtcd.GetAsync();
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

            // From revision 1, so the put is seen however late the watch attaches (no test compacts the shared etcd).
            await using var watch = new EtcdctlTarget(clientUrl, pki.CaFile, ShieldServer.DefaultClient(pki)).Start("watch", "exe/k", "--rev", "1");

            var put = await etcdctl.RunAsync("put", "exe/k", "through the executable");
            var get = await etcdctl.RunAsync("get", "exe/k", "--print-value-only");
            var stored = await new Etcdctl(etcd.ClientUrl).RunAsync("get", "exe/k", "--print-value-only");
            await watch.WaitForStdOutAsync(line => line == "through the executable", TimeSpan.FromSeconds(30));

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

    /// <remarks>
    /// Alone in its process, the proxy's Prometheus endpoint shows its own meters and nothing else; proxies that share
    /// the test process share the exporter's streams, so the in-process tests count on each proxy's own meters.
    /// </remarks>
    [Fact]
    public async Task Started_as_a_process_it_serves_well_formed_prometheus_text_with_its_metric_families_and_no_keys_or_values()
    {
        var etcd = await SharedEtcd.GetAsync();
        var directory = Directory.CreateTempSubdirectory("etcdshield-exe-").FullName;
        try
        {
            var ports = FreePort.Allocate(2);
            var clientUrl = $"https://127.0.0.1:{ports[0]}";
            var metricsUrl = $"http://127.0.0.1:{ports[1]}";
            await using var shield = BackgroundProcess.Start(DotnetHost(), [
                Assembly,
                .. ValidFlags(clientUrl),
                "--upstream-endpoints", etcd.ClientUrl,
                "--metrics-listen-url", metricsUrl,
                "--encryption-key-file", ShieldServer.WriteDevelopmentKey(directory),
            ]);
            await shield.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            var target = new EtcdctlTarget(clientUrl, pki.CaFile, ShieldServer.DefaultClient(pki));

            (await target.RunAsync("put", "leak-check/sealed", "leak-check-sealed-value")).EnsureSuccess();
            (await new Etcdctl(etcd.ClientUrl).RunAsync("put", "leak-check/plain", "leak-check-plaintext-value")).EnsureSuccess();
            var refused = await target.RunAsync("get", "leak-check/plain");
            await using var watch = target.Start("watch", "leak-check/watched");
            using var http = new HttpClient();
            var text = await Eventually.HoldsAsync(
                () => http.GetStringAsync(new Uri(metricsUrl + "/metrics")),
                t => Sample(t, "etcdshield_requests_total", "method=\"KV/Put\"", "code=\"OK\"") == 1 &&
                     Sample(t, "etcdshield_encryption_decrypt_failures_total", "reason=\"not_encrypted\"") == 1 &&
                     Sample(t, "etcdshield_streams_active", "method=\"Watch/Watch\"") == 1,
                TimeSpan.FromSeconds(30));
            await watch.KillAsync();
            var stopped = await shield.TerminateAsync(TimeSpan.FromSeconds(20));

            Assert.False(refused.Succeeded, refused.ToString());
            Assert.Contains("code = DataLoss", refused.StdErr, StringComparison.Ordinal);
            AssertWellFormedPrometheusText(text);
            Assert.Contains("# TYPE etcdshield_requests_total counter", text, StringComparison.Ordinal);
            Assert.Contains("# TYPE etcdshield_request_duration_seconds histogram", text, StringComparison.Ordinal);
            Assert.Contains("# TYPE etcdshield_streams_active gauge", text, StringComparison.Ordinal);
            Assert.Contains("# TYPE etcdshield_encryption_decrypt_failures_total counter", text, StringComparison.Ordinal);
            Assert.Contains("etcdshield_request_duration_seconds_bucket{", text, StringComparison.Ordinal);
            Assert.Matches("(?m)^target_info\\{.*service_name=\"etcdshield\"", text);
            Assert.DoesNotContain("leak-check", text, StringComparison.Ordinal);
            Assert.Equal(0, stopped.ExitCode);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Sighup_reloads_the_policy_and_keeps_the_process_serving()
    {
        var etcd = await SharedEtcd.GetAsync();
        var directory = Directory.CreateTempSubdirectory("etcdshield-exe-").FullName;
        try
        {
            var policy = Path.Combine(directory, "policy.yaml");
            await File.WriteAllTextAsync(policy, ReaderPolicy("read"));
            var reader = pki.IssueClient("exe-reader", "exe-reader");
            var clientUrl = $"https://127.0.0.1:{FreePort.Allocate(1)[0]}";
            await using var shield = BackgroundProcess.Start(DotnetHost(), [
                Assembly,
                .. ValidFlags(clientUrl),
                "--upstream-endpoints", etcd.ClientUrl,
                "--no-encryption",
                "--policy-file", policy,
                "--reload-interval", "1h",
            ]);
            await shield.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            var etcdctl = new Etcdctl(clientUrl, pki.CaFile, reader) { CommandTimeout = TimeSpan.FromSeconds(10) };
            var before = await etcdctl.RunAsync("put", "/exe/policy", "x");

            await File.WriteAllTextAsync(policy + ".new", ReaderPolicy("readwrite"));
            File.Move(policy + ".new", policy, overwrite: true);
            // The shell's own kill: procps is not on every minimal image.
            var hangup = await ExternalCommand.RunAsync("/bin/sh", ["-c", $"kill -HUP {shield.ProcessId}"]);
            await shield.WaitForStdOutAsync(line => line.Contains("Reloaded the policy", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            var after = await etcdctl.RunAsync("put", "/exe/policy", "x");
            var stopped = await shield.TerminateAsync(TimeSpan.FromSeconds(20));

            Assert.False(before.Succeeded, before.ToString());
            Assert.Contains("PermissionDenied", before.StdErr, StringComparison.Ordinal);
            Assert.True(hangup.Succeeded, hangup.ToString());
            Assert.True(after.Succeeded, after.ToString());
            Assert.Equal(0, stopped.ExitCode);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_broken_policy_file_stops_it_at_start_up_naming_the_line()
    {
        var policy = Path.Combine(pki.Directory, "broken-exe-policy.yaml");
        await File.WriteAllTextAsync(policy, "identities:\n  - name: x\n    match: { cn: x }\n    methods: [Maintenance/Snapshott]\n");

        var refused = await RunAsync([.. ValidFlags(), "--no-encryption", "--policy-file", policy]);

        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("--policy-file", refused.StdErr, StringComparison.Ordinal);
        Assert.Contains("line 4", refused.StdErr, StringComparison.Ordinal);
    }

    private static string ReaderPolicy(string permission) => $$"""
        identities:
          - name: exe-reader
            match: { cn: exe-reader }
            keys: [{ prefix: /exe/, permission: {{permission}} }]
        """;

    /// <summary>
    /// The sum of the samples of <paramref name="name"/> whose labels include every one of <paramref name="labels"/>,
    /// or null if there is none.
    /// </summary>
    private static double? Sample(string exposition, string name, params string[] labels)
    {
        var values = exposition.Split('\n')
            .Where(line => line.StartsWith(name + "{", StringComparison.Ordinal) || line.StartsWith(name + " ", StringComparison.Ordinal))
            .Where(line => labels.All(label => line[..(line.IndexOf(' ', StringComparison.Ordinal) + 1)].Contains(label, StringComparison.Ordinal)))
            .Select(line => double.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture))
            .ToList();
        return values.Count == 0 ? null : values.Sum();
    }

    /// <summary>
    /// Prometheus text format 0.0.4: HELP and TYPE comments, then samples <c>name{label="value",...} number</c>,
    /// each of a family whose TYPE came first (histograms add _bucket, _sum and _count).
    /// </summary>
    private static void AssertWellFormedPrometheusText(string exposition)
    {
        var typed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in exposition.Split('\n').Where(line => line.Length > 0))
        {
            if (Regex.Match(line, @"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$") is { Success: true } type)
            {
                Assert.True(typed.Add(type.Groups[1].Value), $"a second TYPE for {type.Groups[1].Value}");
                continue;
            }

            if (line.StartsWith("# HELP ", StringComparison.Ordinal) || line == "# EOF")
            {
                continue;
            }

            var sample = Regex.Match(line, @"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*=""(\\.|[^""\\])*""(,[a-zA-Z_][a-zA-Z0-9_]*=""(\\.|[^""\\])*"")*\})? (\S+)( -?\d+)?$");
            Assert.True(sample.Success, $"not a Prometheus sample line: {line}");
            var name = sample.Groups[1].Value;
            Assert.True(
                typed.Contains(name) || new[] { "_bucket", "_sum", "_count" }.Any(suffix => name.EndsWith(suffix, StringComparison.Ordinal) && typed.Contains(name[..^suffix.Length])),
                $"a sample of a family without a TYPE line: {line}");
            var value = sample.Groups[6].Value;
            Assert.True(value is "+Inf" or "-Inf" or "NaN" || double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _), $"not a number: {line}");
        }

        Assert.NotEmpty(typed);
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
    internal static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "/usr/bin/dotnet";
}
