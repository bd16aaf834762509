using EtcdShield.EndToEnd.Infrastructure;
using Microsoft.Extensions.Logging;

namespace EtcdShield.EndToEnd;

/// <summary>
/// Proves the end-to-end infrastructure against the real tools, so a failing feature test can be
/// blamed on the feature and not on its scaffolding.
/// </summary>
public sealed partial class InfrastructureTests(TestPki pki) : IClassFixture<TestPki>
{
    private static readonly Func<ILogger, int, IDisposable?> RequestScope = LoggerMessage.DefineScope<int>("request {Id}");

    [Fact]
    public async Task Plain_etcd_stores_and_returns_a_key_through_etcdctl()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        var etcdctl = new Etcdctl(etcd.ClientUrl);

        var put = (await etcdctl.RunAsync("put", "a", "1")).EnsureSuccess();
        var get = (await etcdctl.RunAsync("get", "a")).EnsureSuccess();

        Assert.Equal(["OK"], put.StdOutLines);
        Assert.Equal(["a", "1"], get.StdOutLines);
    }

    [Fact]
    public async Task Etcd_on_a_unix_socket_has_no_tcp_client_port_and_serves_again_after_a_kill()
    {
        await using var etcd = await EtcdProcess.StartAsync(new EtcdOptions { ClientUnixSocket = true });
        var etcdctl = new Etcdctl(etcd.ClientUrl);
        (await etcdctl.RunAsync("put", "a", "1")).EnsureSuccess();
        Assert.Equal(etcd.WorkingDirectory, Path.GetDirectoryName(etcd.ClientSocketPath));

        // A kill leaves etcd's socket file behind, which etcd 3.4 refuses to bind over; StartAgainAsync removes it.
        await etcd.StopAsync();
        Assert.True(File.Exists(etcd.ClientSocketPath));
        await etcd.StartAgainAsync();

        Assert.Equal(["a", "1"], (await etcdctl.RunAsync("get", "a")).EnsureSuccess().StdOutLines);
    }

    [Fact]
    public async Task Etcd_that_cannot_start_fails_at_once_with_its_log()
    {
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(
            () => EtcdProcess.StartAsync(new EtcdOptions { ExtraArguments = ["--no-such-flag"] }));

        Assert.Contains("flag provided but not defined", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_command_that_never_ends_is_killed_at_its_deadline_with_its_output_kept()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        var etcdctl = new Etcdctl(etcd.ClientUrl);
        (await etcdctl.RunAsync("put", "w", "1")).EnsureSuccess();

        // A watch runs until killed; --rev=1 replays the put, so the output is known without racing it.
        var watch = await etcdctl.RunAsync(["watch", "w", "--rev=1"], standardInput: null, timeout: TimeSpan.FromSeconds(1));

        Assert.True(watch.TimedOut);
        Assert.Equal(-1, watch.ExitCode);
        Assert.Equal(["PUT", "w", "1"], watch.StdOutLines);
    }

    [Fact]
    public async Task Etcdctl_txn_reads_its_operations_from_stdin()
    {
        // Under the zap logger too, whose ready line differs from the default logger's.
        await using var etcd = await EtcdProcess.StartAsync(new EtcdOptions { ExtraArguments = ["--logger=zap", "--log-outputs=stderr"] });
        var etcdctl = new Etcdctl(etcd.ClientUrl);

        // Compares, success ops and failure ops, each section ended by a blank line (the last one
        // too: without it etcdctl 3.4 fails with "Error: EOF").
        var txn = (await etcdctl.RunAsync(["txn"], "create(\"k\") = \"0\"\n\nput k v\n\nput k other\n\n")).EnsureSuccess();
        var get = (await etcdctl.RunAsync("get", "k", "--print-value-only")).EnsureSuccess();

        Assert.Equal("SUCCESS", txn.StdOutLines[0]);
        Assert.Equal(["v"], get.StdOutLines);
    }

    [Fact]
    public async Task Mutual_tls_etcd_accepts_a_client_of_its_ca_and_refuses_others()
    {
        await using var etcd = await EtcdProcess.StartAsync(new EtcdOptions { ClientTls = EtcdClientTls.From(pki) });
        Assert.StartsWith("https://127.0.0.1:", etcd.ClientUrl, StringComparison.Ordinal);

        var trusted = pki.IssueClient("smoke-client", "smoke-client");
        var other = pki.CreateOtherAuthority("smoke-other-ca");
        var untrusted = pki.IssueClient("smoke-untrusted", "smoke-client", issuer: other);
        var expired = pki.IssueClient("smoke-expired", "smoke-client", notBefore: DateTimeOffset.UtcNow.AddDays(-2), notAfter: DateTimeOffset.UtcNow.AddDays(-1));

        var ok = await new Etcdctl(etcd.ClientUrl, pki.CaFile, trusted).RunAsync("put", "tls", "yes");
        var refused = new (CertificatePaths? Client, string EtcdSays)[]
        {
            (untrusted, "certificate signed by unknown authority"),
            (expired, "certificate has expired or is not yet valid"),
            (null, "client didn't provide a certificate"),
        };

        ok.EnsureSuccess();
        foreach (var (client, etcdSays) in refused)
        {
            // etcdctl only gives up at its command timeout, so it is shortened to keep the test fast.
            var result = await new Etcdctl(etcd.ClientUrl, pki.CaFile, client) { CommandTimeout = TimeSpan.FromSeconds(1) }.RunAsync("get", "tls");
            Assert.False(result.Succeeded, result.ToString());
            Assert.False(result.TimedOut, result.ToString());

            // The refusal must come from the TLS handshake, not from something else going wrong.
            await etcd.WaitForLogAsync(etcdSays, TimeSpan.FromSeconds(5));
        }
    }

    [Fact]
    public async Task Pki_chains_verify_with_openssl_and_its_crl_revokes()
    {
        var client = pki.IssueClient("pki-client", "pki-client", uris: ["spiffe://etcdshield.test/client"], organizationalUnit: "smoke");
        var revoked = pki.IssueClient("pki-revoked", "pki-revoked");
        var intermediate = pki.CreateIntermediateAuthority("pki-intermediate", "EtcdShield Test Intermediate CA");
        var chained = pki.IssueClient("pki-chained", "pki-chained", issuer: intermediate);
        var crl = pki.WriteCrl("pki", [revoked]);

        var clientOk = await OpenSslVerifyAsync("-purpose", "sslclient", client.CertFile);
        var serverOk = await OpenSslVerifyAsync("-purpose", "sslserver", pki.ServerCert.CertFile);
        var chainedOk = await OpenSslVerifyAsync("-untrusted", chained.CertFile, chained.CertFile);
        var revokedResult = await OpenSslVerifyAsync("-crl_check", "-CRLfile", crl, revoked.CertFile);
        var notRevoked = await OpenSslVerifyAsync("-crl_check", "-CRLfile", crl, client.CertFile);

        clientOk.EnsureSuccess();
        serverOk.EnsureSuccess();
        chainedOk.EnsureSuccess();
        notRevoked.EnsureSuccess();
        Assert.False(revokedResult.Succeeded, revokedResult.ToString());
        Assert.Contains("certificate revoked", revokedResult.StdOut + revokedResult.StdErr, StringComparison.Ordinal);

        // The chained file starts with the leaf, which is what LoadCertificate must return.
        using var leaf = chained.LoadCertificate();
        Assert.Equal("CN=pki-chained", leaf.Subject);
        using var withKey = client.LoadWithPrivateKey();
        Assert.True(withKey.HasPrivateKey);
        Assert.Equal("CN=pki-client, OU=smoke", withKey.Subject);
    }

    [Fact]
    public async Task Three_member_cluster_keeps_serving_while_one_member_is_down()
    {
        await using var cluster = await EtcdCluster.StartAsync(3);
        var etcdctl = new Etcdctl(cluster.Endpoints);
        (await etcdctl.RunAsync("put", "before", "1")).EnsureSuccess();

        var victim = cluster.Members[0];
        await victim.StopAsync();
        await cluster.WaitForLeaderAsync();
        var survivors = new Etcdctl(string.Join(',', cluster.Members.Skip(1).Select(m => m.ClientUrl)));
        (await survivors.RunAsync("put", "during", "2")).EnsureSuccess();

        await victim.StartAgainAsync();
        var get = (await new Etcdctl(victim.ClientUrl).RunAsync("get", "during", "--print-value-only")).EnsureSuccess();
        var members = (await etcdctl.RunAsync("member", "list")).EnsureSuccess();

        Assert.Equal(["2"], get.StdOutLines);
        Assert.Equal(3, members.StdOutLines.Count);
    }

    [Fact]
    public async Task SoftHsm_token_holds_a_generated_non_extractable_aes_key()
    {
        using var token = await SoftHsmToken.CreateAsync();

        var created = await token.CreateAesKeyAsync("smoke-kek");
        var listed = (await token.ListObjectsAsync()).EnsureSuccess();

        created.EnsureSuccess();
        Assert.Contains("label:      smoke-kek", listed.StdOut, StringComparison.Ordinal);
        Assert.Contains("never extractable", listed.StdOut, StringComparison.Ordinal);
        Assert.Equal(token.Pin, await File.ReadAllTextAsync(token.PinFile));
    }

    [Fact]
    public async Task Log_sink_captures_entries_and_wakes_waiters()
    {
        using var sink = new TestLogSink();
        using var factory = LoggerFactory.Create(builder => builder.AddProvider(sink));
        var logger = factory.CreateLogger("Smoke");

        var waiting = sink.WaitForAsync(e => e.Message.Contains("second", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        using (RequestScope(logger, 7))
        {
            LogFirst(logger, 1);
            LogSecond(logger, 2);
        }

        var entry = await waiting;
        Assert.Equal(LogLevel.Error, entry.Level);
        Assert.Equal("request 7", Assert.Single(entry.Scopes)?.ToString());
        Assert.Contains(new KeyValuePair<string, object?>("Value", 2), entry.Properties);
        Assert.Equal(2, sink.Entries.Count);
        sink.AssertNoErrors(e => e.EventId.Name == nameof(LogSecond));
    }

    private Task<CommandResult> OpenSslVerifyAsync(params string[] arguments) =>
        ExternalCommand.RunAsync("/usr/bin/openssl", ["verify", "-CAfile", pki.CaFile, .. arguments]);

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "first {Value}")]
    private static partial void LogFirst(ILogger logger, int value);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "second {Value}")]
    private static partial void LogSecond(ILogger logger, int value);
}
