using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Configuration;

/// <summary>
/// The built executable configured as etcd is: by <c>--config-file</c> alone, by <c>ETCDSHIELD_*</c> variables
/// alone, and by all three sources at once, where the command line beats the environment, which beats the file.
/// Each start relays etcdctl to a real etcd, values encrypted at rest. About 5 s per start on 2 cores.
/// </summary>
public sealed class ConfigurationSourcesTests(TestPki pki) : IClassFixture<TestPki>, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("etcdshield-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task A_config_file_alone_starts_a_working_proxy()
    {
        var etcd = await SharedEtcd.GetAsync();
        var clientUrl = $"https://127.0.0.1:{FreePort.Allocate(1)[0]}";
        var config = Path.Combine(_directory, "etcdshield.yaml");
        await File.WriteAllTextAsync(config, $"""
            # As in etcd's config file: flag names without the leading --.
            listen-client-urls: {clientUrl}
            cert-file: {pki.ServerCert.CertFile}
            key-file: {pki.ServerCert.KeyFile}
            trusted-ca-file: {pki.CaFile}
            allow-cn:
              - {ShieldServer.ClientName}
            upstream-endpoints: "{etcd.ClientUrl}"
            encryption-key-file: {ShieldServer.WriteDevelopmentKey(_directory)}
            audit-hash-keys: false
            """);

        await AssertRelaysAsync(["--config-file", config], environment: null, clientUrl, etcd, "config-file");
    }

    [Fact]
    public async Task Environment_variables_alone_start_a_working_proxy()
    {
        var etcd = await SharedEtcd.GetAsync();
        var clientUrl = $"https://127.0.0.1:{FreePort.Allocate(1)[0]}";
        Dictionary<string, string?> environment = new()
        {
            ["ETCDSHIELD_LISTEN_CLIENT_URLS"] = clientUrl,
            ["ETCDSHIELD_CERT_FILE"] = pki.ServerCert.CertFile,
            ["ETCDSHIELD_KEY_FILE"] = pki.ServerCert.KeyFile,
            ["ETCDSHIELD_TRUSTED_CA_FILE"] = pki.CaFile,
            ["ETCDSHIELD_ALLOW_CN"] = $"someone-else,{ShieldServer.ClientName}",
            ["ETCDSHIELD_UPSTREAM_ENDPOINTS"] = etcd.ClientUrl,
            ["ETCDSHIELD_ENCRYPTION_KEY_FILE"] = ShieldServer.WriteDevelopmentKey(_directory),
        };

        await AssertRelaysAsync([], environment, clientUrl, etcd, "environment");
    }

    [Fact]
    public async Task The_command_line_beats_the_environment_which_beats_the_file()
    {
        var etcd = await SharedEtcd.GetAsync();
        var ports = FreePort.Allocate(3);
        var (fileUrl, environmentUrl, flagUrl) = ($"https://127.0.0.1:{ports[0]}", $"https://127.0.0.1:{ports[1]}", $"https://127.0.0.1:{ports[2]}");
        var config = Path.Combine(_directory, "etcdshield.yaml");
        // The file alone would listen elsewhere and admit nobody the test has a certificate for.
        await File.WriteAllTextAsync(config, $"""
            listen-client-urls: [{fileUrl}]
            allow-cn: [nobody]
            cert-file: {pki.ServerCert.CertFile}
            key-file: {pki.ServerCert.KeyFile}
            trusted-ca-file: {pki.CaFile}
            upstream-endpoints: {etcd.ClientUrl}
            no-encryption: true
            """);
        Dictionary<string, string?> environment = new()
        {
            ["ETCDSHIELD_LISTEN_CLIENT_URLS"] = environmentUrl,
            ["ETCDSHIELD_ALLOW_CN"] = ShieldServer.ClientName,
            ["ETCDSHIELD_NO_ENCRYPTION"] = "false",
            ["ETCDSHIELD_ENCRYPTION_KEY_FILE"] = ShieldServer.WriteDevelopmentKey(_directory),
        };

        var ready = await AssertRelaysAsync(["--config-file", config, "--listen-client-urls", flagUrl], environment, flagUrl, etcd, "precedence");

        Assert.Contains(flagUrl, ready, StringComparison.Ordinal);
        Assert.DoesNotContain(environmentUrl, ready, StringComparison.Ordinal);
        Assert.DoesNotContain(fileUrl, ready, StringComparison.Ordinal);
    }

    /// <summary>Starts the executable, puts and gets through it with etcdctl, checks etcd holds ciphertext; returns the ready line.</summary>
    private async Task<string> AssertRelaysAsync(string[] arguments, Dictionary<string, string?>? environment, string clientUrl, EtcdProcess etcd, string name)
    {
        var key = $"config-sources/{name}/{Guid.NewGuid():N}";
        var value = $"value set through the {name} proxy";
        await using var shield = BackgroundProcess.Start(ExecutableTests.DotnetHost(), [ExecutableTests.Assembly, .. arguments], environment);
        var ready = await shield.WaitForStdOutAsync(line => line.Contains("EtcdShield ready", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        var etcdctl = new Etcdctl(clientUrl, pki.CaFile, ShieldServer.DefaultClient(pki));

        var put = await etcdctl.RunAsync("put", key, value);
        var get = await etcdctl.RunAsync("get", key, "--print-value-only");
        var stored = await new Etcdctl(etcd.ClientUrl).RunAsync("get", key, "--print-value-only");
        var stopped = await shield.TerminateAsync(TimeSpan.FromSeconds(20));

        Assert.True(put.Succeeded, put.ToString());
        Assert.Equal([value], get.EnsureSuccess().StdOutLines);
        Assert.DoesNotContain(value, stored.EnsureSuccess().StdOut, StringComparison.Ordinal);
        Assert.Equal(0, stopped.ExitCode);
        return ready;
    }
}
