using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Hosting;
using EtcdShield.Keys;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Keys;

/// <summary><c>etcdshield keys create|rotate|status</c> against real SoftHSM2 tokens (and etcd, for status).</summary>
[Collection(SoftHsmTests.Name)]
public sealed class KeysCommandTests(SoftHsmInProcess hsm, TestPki pki, ITestOutputHelper output) : IClassFixture<TestPki>
{
    [Fact]
    public async Task Create_refuses_an_existing_kek_and_rotate_adds_numbered_versions()
    {
        var token = hsm.CreateToken();

        var created = await RunAsync(["create", .. token.Flags("kek")]);
        var again = await RunAsync(["create", .. token.Flags("kek")]);
        var second = await RunAsync(["rotate", .. token.Flags("kek")]);
        var third = await RunAsync(["rotate", .. token.Flags("kek")]);
        var status = await RunAsync(["status", .. token.Flags("kek")]);

        Assert.Equal((0, ""), (created.ExitCode, created.StdErr));
        Assert.Contains("envelope id pkcs11:kek)", created.StdOut, StringComparison.Ordinal);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("already exists", again.StdErr, StringComparison.Ordinal);
        Assert.Equal(0, second.ExitCode);
        Assert.Contains("\"kek#2\" (version 2, envelope id pkcs11:kek#2)", second.StdOut, StringComparison.Ordinal);
        Assert.Contains("\"kek#3\" (version 3", third.StdOut, StringComparison.Ordinal);
        Assert.Equal(0, status.ExitCode);
        Assert.Matches(@"1\s+kek\s+pkcs11:kek\s+older \(unwraps only\)", status.StdOut);
        Assert.Matches(@"2\s+kek#2\s+pkcs11:kek#2\s+older", status.StdOut);
        Assert.Matches(@"3\s+kek#3\s+pkcs11:kek#3\s+current \(wraps new data keys\)", status.StdOut);
    }

    [Fact]
    public async Task Rotate_without_a_kek_and_a_wrong_pin_are_provider_errors()
    {
        var token = hsm.CreateToken();
        var wrongPin = Path.Combine(Path.GetDirectoryName(token.PinFile)!, $"{token.Label}.wrong");
        await File.WriteAllTextAsync(wrongPin, "999999\n");
        string[] withWrongPin = [.. token.Flags("kek").Select(f => f == token.PinFile ? wrongPin : f)];

        var refusedPin = await RunAsync(["status", .. withWrongPin]);
        var rotate = await RunAsync(["rotate", .. token.Flags("kek")]);

        Assert.Equal(1, refusedPin.ExitCode);
        Assert.Contains("CKR_PIN_INCORRECT", refusedPin.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("999999", refusedPin.StdErr + refusedPin.StdOut, StringComparison.Ordinal);
        Assert.Equal(1, rotate.ExitCode);
        Assert.Contains("keys create", rotate.StdErr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new string[0], "keys [command] [options]")]
    [InlineData(new[] { "destroy" }, "unknown command 'destroy'")]
    [InlineData(new[] { "create", "--pkcs11-module", "/usr/lib/softhsm/libsofthsm2.so" }, "--pkcs11-token-label or --pkcs11-slot")]
    [InlineData(new[] { "rotate", "--no-such-flag" }, "unknown flag --no-such-flag")]
    [InlineData(new[] { "create", "--upstream-endpoints", "http://127.0.0.1:2379" }, "unknown flag --upstream-endpoints")]
    [InlineData(new[] { "status", "--pkcs11-module", "/no/such/module.so" }, "--pkcs11-module /no/such/module.so: file not found")]
    public async Task Bad_flags_exit_2_with_what_is_wrong(string[] args, string message)
    {
        var result = await RunAsync(args);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.StdErr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("create", "--pkcs11-key-label <LABEL>")]
    [InlineData("rotate", "--pkcs11-pin-file <FILE>")]
    [InlineData("status", "--upstream-endpoints <URL[,...]>")]
    public async Task Each_command_has_help(string command, string flag)
    {
        var result = await RunAsync([command, "--help"]);
        var overview = await RunAsync(["--help"]);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains(flag, result.StdOut, StringComparison.Ordinal);
        Assert.Equal(0, overview.ExitCode);
        Assert.Contains("rotate  Make the next version", overview.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_counts_the_values_and_data_keys_each_kek_protects_in_etcd()
    {
        var token = hsm.CreateToken();
        (await RunAsync(["create", .. token.Flags("kek")])).EnsureSuccess();
        // Its own etcd: the status counts every value in it.
        await using var etcd = await EtcdProcess.StartAsync();
        await using (var proxy = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: token.Flags("kek"), output: output))
        {
            (await proxy.Etcdctl(pki).RunAsync("put", "a", "1")).EnsureSuccess();
            (await proxy.Etcdctl(pki).RunAsync("put", "b", "2")).EnsureSuccess();
            (await RunAsync(["rotate", .. token.Flags("kek")])).EnsureSuccess();
            (await RunAsync(["rotate", .. token.Flags("kek")])).EnsureSuccess();
            Assert.True(await proxy.Services.GetRequiredService<KeyRingRefresher>().CheckNowAsync(default));
            (await proxy.Etcdctl(pki).RunAsync("put", "c", "3")).EnsureSuccess();
        }

        (await new Etcdctl(etcd.ClientUrl).RunAsync("put", "plain", "not encrypted")).EnsureSuccess();

        var status = await RunAsync(["status", .. token.Flags("kek"), "--upstream-endpoints", etcd.ClientUrl]);
        output.WriteLine(status.StdOut);

        Assert.Equal((0, ""), (status.ExitCode, status.StdErr));
        Assert.Contains("(4 keys)", status.StdOut, StringComparison.Ordinal);
        Assert.Matches(@"pkcs11:kek\s+2\s+1\s*\n", status.StdOut);
        Assert.Matches(@"pkcs11:kek#2\s+0\s+0\s+no values: can be deleted from the token", status.StdOut);
        Assert.Matches(@"pkcs11:kek#3\s+1\s+1\s*\n", status.StdOut);
        Assert.Matches(@"\(not encrypted\)\s+1", status.StdOut);
    }

    [Fact]
    public async Task The_executable_runs_keys_rotate_and_a_running_proxy_follows()
    {
        var token = hsm.CreateToken();
        (await RunAsync(["create", .. token.Flags("kek")])).EnsureSuccess();
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("keys-rotate");
        await using var proxy = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: token.Flags("kek"), output: output);
        (await proxy.Etcdctl(pki).RunAsync("put", p + "before", "1")).EnsureSuccess();

        // Another process, as an operator would run it: SoftHSM there sees the token on disk, and this process
        // sees the key that process creates.
        var rotated = await ExternalCommand.RunAsync(
            System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "/usr/bin/dotnet",
            [Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll"), "keys", "rotate", .. token.Flags("kek")],
            environment: hsm.Environment);
        var switched = await proxy.Services.GetRequiredService<KeyRingRefresher>().CheckNowAsync(default);
        (await proxy.Etcdctl(pki).RunAsync("put", p + "after", "2")).EnsureSuccess();

        Assert.True(rotated.Succeeded, rotated.ToString());
        Assert.Contains("pkcs11:kek#2", rotated.StdOut, StringComparison.Ordinal);
        Assert.True(switched);
        Assert.Equal("pkcs11:kek#2", (await Pkcs11ProxyTests.StoredEnvelopeAsync(etcd, p + "after")).KekId);
        Assert.Equal(["1"], (await proxy.Etcdctl(pki).RunAsync("get", p + "before", "--print-value-only")).EnsureSuccess().StdOutLines);
    }

    private static async Task<CommandResult> RunAsync(string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = await KeysCommand.RunAsync(args, stdout, stderr, NullLoggerFactory.Instance);
        return new CommandResult(exitCode, stdout.ToString(), stderr.ToString()) { CommandLine = "etcdshield keys " + string.Join(' ', args) };
    }
}
