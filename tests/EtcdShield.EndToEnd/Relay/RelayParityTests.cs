using System.Globalization;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// The issue's acceptance: for every etcdctl command, the output through EtcdShield equals the output against
/// etcd directly (IDs, URLs and timings aside), exit codes, error codes and messages included. The same
/// scenario runs against a fresh etcd behind the proxy and is compared line by line with the direct run.
/// </summary>
public sealed class RelayParityTests(DirectScenarioFixture fixture, ITestOutputHelper output) : IClassFixture<DirectScenarioFixture>
{
    [Fact]
    public async Task Every_etcdctl_command_prints_through_the_encrypting_proxy_what_it_prints_against_etcd()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, etcd.ClientUrl, encrypt: true, output: output);

        var proxied = await RunThroughAsync(shield);

        TranscriptComparison.AssertSame(fixture.Direct, proxied);
        AssertEtcdNeverRevealed(proxied, shield, etcd);

        // Not a trivial equality: etcd itself holds ciphertext where etcdctl saw plaintext.
        var stored = (await new Etcdctl(etcd.ClientUrl).RunAsync("get", "c/1", "--print-value-only")).EnsureSuccess();
        Assert.DoesNotContain("after", stored.StdOut, StringComparison.Ordinal);
        Assert.NotEmpty(stored.StdOut.Trim());
    }

    [Fact]
    public async Task Every_etcdctl_command_prints_through_the_relay_without_encryption_what_it_prints_against_etcd()
    {
        // This time etcd serves TLS too, and the proxy presents its own client certificate to it.
        await using var etcd = await EtcdProcess.StartAsync(new EtcdOptions { ClientTls = fixture.EtcdTls });
        var upstreamClient = fixture.Pki.IssueClient("parity-upstream", "etcdshield-upstream");
        await using var shield = await ShieldServer.StartAsync(
            fixture.Pki,
            etcd.ClientUrl,
            encrypt: false,
            ["--upstream-trusted-ca-file", fixture.Pki.CaFile, "--upstream-cert-file", upstreamClient.CertFile, "--upstream-key-file", upstreamClient.KeyFile],
            output);

        var proxied = await RunThroughAsync(shield);

        TranscriptComparison.AssertSame(fixture.Direct, proxied);
        AssertEtcdNeverRevealed(proxied, shield, etcd);

        // Relayed as sent: etcd stores exactly what the client wrote.
        var stored = (await new Etcdctl(etcd.ClientUrl, fixture.Pki.CaFile, upstreamClient).RunAsync("get", "c/1", "--print-value-only")).EnsureSuccess();
        Assert.Equal(["after"], stored.StdOutLines);
    }

    [Fact]
    public async Task A_value_sort_with_a_limit_and_no_order_answers_what_etcd_answers()
    {
        // etcdctl sends SortOrder NONE when --order is not given. etcd then fetches limit+1 keys in key order
        // before sorting them (apply.go only widens the fetch when an order is set), so on p/a=10 p/b=3 p/c=2
        // p/d=3 p/e="" it answers p/a, p/c, p/b rather than the globally smallest values p/e, p/a, p/c.
        await using var direct = await EtcdProcess.StartAsync();
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, etcd.ClientUrl, encrypt: true, output: output);
        var runs = new[]
        {
            new ScenarioRun("etcd", new EtcdctlTarget(direct.ClientUrl), DirectScenarioFixture.NewDirectory()),
            new ScenarioRun("etcdshield", EtcdctlTarget.Proxy(shield, fixture.Pki), DirectScenarioFixture.NewDirectory()),
        };

        foreach (var run in runs)
        {
            foreach (var (key, value) in ((string, string)[])[("p/a", "10"), ("p/b", "3"), ("p/c", "2"), ("p/d", "3"), ("p/e", "")])
            {
                await run.RunAsync("put", key, value);
            }

            await run.RunAsync("get", "p/", "--prefix", "--sort-by=VALUE", "--limit=3");
            await run.RunAsync("get", "p/", "--prefix", "--sort-by=VALUE", "--keys-only", "--limit=3", "-w", "json");
            Directory.Delete(run.Directory, recursive: true);
        }

        TranscriptComparison.AssertSame(runs[0], runs[1]);
    }

    private async Task<ScenarioRun> RunThroughAsync(ShieldServer shield)
    {
        var run = new ScenarioRun("etcdshield", EtcdctlTarget.Proxy(shield, fixture.Pki), DirectScenarioFixture.NewDirectory());
        try
        {
            await EtcdctlScenario.RunAsync(run);
            return run;
        }
        finally
        {
            output.WriteLine(TranscriptComparison.Slowest(run));
            output.WriteLine(TranscriptComparison.Render(run));
            Directory.Delete(run.Directory, recursive: true);
        }
    }

    /// <summary>
    /// Normalising endpoints away would also hide a leak, so the raw output is checked too: the member list
    /// names the proxy's URL as the client URL, and etcd's own client address appears nowhere.
    /// </summary>
    private static void AssertEtcdNeverRevealed(ScenarioRun proxied, ShieldServer shield, EtcdProcess etcd)
    {
        // A healthy run gives the relay and the TLS layer nothing to warn about (killed watches and listeners
        // included: a client going away is routine).
        Assert.DoesNotContain(shield.Logs.AtOrAbove(LogLevel.Warning), e => e.Category.StartsWith("EtcdShield.Relay", StringComparison.Ordinal) || e.Category.StartsWith("EtcdShield.Tls", StringComparison.Ordinal));

        var etcdAddress = "127.0.0.1:" + etcd.ClientPort.ToString(CultureInfo.InvariantCulture);
        foreach (var step in proxied.Steps)
        {
            Assert.DoesNotContain(etcdAddress, step.Result.StdOut, StringComparison.Ordinal);
            Assert.DoesNotContain(etcdAddress, step.Result.StdErr, StringComparison.Ordinal);
        }

        var memberList = proxied.Steps.First(s => s.Arguments.SequenceEqual(["member", "list"]));
        var columns = Assert.Single(memberList.Result.StdOutLines).Split(", ");
        Assert.Equal(shield.ClientUrl, columns[4]);
        Assert.Equal(etcd.PeerUrl, columns[3]);
    }
}
