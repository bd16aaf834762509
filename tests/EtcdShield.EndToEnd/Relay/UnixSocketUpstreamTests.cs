using System.Net;
using System.Text;
using EtcdShield.EndToEnd.Gateway;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// etcd behind the proxy only: etcd serves clients on a unix socket (no TCP client port), plain and with TLS and
/// client-certificate auth, and the proxy relays to it by the absolute path or by etcd's own relative
/// <c>unix://NAME:PORT</c>; gRPC, the gateway and the forwarded /version all go over the socket, values land
/// encrypted, a missing socket fails over like a closed port, and a socket whose certificate is not trusted is
/// refused.
/// </summary>
public sealed class UnixSocketUpstreamTests(UnixSocketUpstreamTests.Fixture fixture, ITestOutputHelper output) : IClassFixture<UnixSocketUpstreamTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        private EtcdProcess? plain;
        private EtcdProcess? tls;

        public TestPki Pki { get; } = new();

        internal EtcdProcess Plain => plain ?? throw new InvalidOperationException("Not started.");

        internal EtcdProcess Tls => tls ?? throw new InvalidOperationException("Not started.");

        internal CertificatePaths UpstreamClient { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            UpstreamClient = Pki.IssueClient("upstream-client", "etcdshield-upstream");
            plain = await EtcdProcess.StartAsync(new EtcdOptions { Name = "plain", ClientUnixSocket = true });
            tls = await EtcdProcess.StartAsync(new EtcdOptions { Name = "tls", ClientUnixSocket = true, ClientTls = EtcdClientTls.From(Pki, clientCertAuth: true) });
        }

        public async Task DisposeAsync()
        {
            if (plain is not null)
            {
                await plain.DisposeAsync();
            }

            if (tls is not null)
            {
                await tls.DisposeAsync();
            }

            Pki.Dispose();
        }
    }

    [Fact]
    public async Task Through_an_absolute_socket_path_etcdctl_the_gateway_and_version_reach_etcd_and_values_are_stored_encrypted()
    {
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, "unix://" + fixture.Plain.ClientSocketPath, encrypt: true, output: output);
        var etcdctl = shield.Etcdctl(fixture.Pki);

        (await etcdctl.RunAsync("put", "unix/abs", "secret-value")).EnsureSuccess();
        var got = (await etcdctl.RunAsync("get", "unix/abs", "--print-value-only")).EnsureSuccess();
        Assert.Equal("secret-value", got.StdOut.Trim());

        var stored = (await new Etcdctl(fixture.Plain.ClientUrl).RunAsync("get", "unix/abs", "--print-value-only")).EnsureSuccess();
        Assert.NotEmpty(stored.StdOut.Trim());
        Assert.DoesNotContain("secret-value", stored.StdOut, StringComparison.Ordinal);

        using var gateway = new GatewayHttp(shield.ClientUrl, fixture.Pki);
        var range = await gateway.PostAsync("/v3/kv/range", $$"""{"key":"{{B("unix/abs")}}"}""");
        Assert.Equal(HttpStatusCode.OK, range.Status);
        Assert.Contains(B("secret-value"), range.Body, StringComparison.Ordinal);

        var version = await gateway.PostAsync("/version", "", method: HttpMethod.Get);
        Assert.Equal(HttpStatusCode.OK, version.Status);
        Assert.Contains("etcdserver", version.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Etcds_own_relative_form_is_found_in_the_proxys_working_directory_even_through_a_symlink()
    {
        // The relative name resolves against the proxy's current directory (the test process's): a symlink there
        // to etcd's socket stands in for a proxy started in etcd's directory.
        var name = "unixrel" + Guid.NewGuid().ToString("N")[..8] + ":2379";
        var link = Path.Combine(Environment.CurrentDirectory, name);
        File.CreateSymbolicLink(link, fixture.Plain.ClientSocketPath!);
        try
        {
            await using var shield = await ShieldServer.StartAsync(fixture.Pki, "unix://" + name, encrypt: true, output: output);

            var put = await shield.Etcdctl(fixture.Pki).RunAsync("put", "unix/relative", "v");

            Assert.True(put.Succeeded, put.ToString());
            Assert.Equal("v", (await shield.Etcdctl(fixture.Pki).RunAsync("get", "unix/relative", "--print-value-only")).EnsureSuccess().StdOut.Trim());
        }
        finally
        {
            File.Delete(link);
        }
    }

    [Fact]
    public async Task A_missing_socket_fails_over_to_the_next_member_like_a_closed_port()
    {
        var missing = Path.Combine(fixture.Plain.WorkingDirectory, "missing.sock");
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, $"unix://{missing},unix://{fixture.Plain.ClientSocketPath}", encrypt: false, output: output);

        var put = await shield.Etcdctl(fixture.Pki).RunAsync("put", "unix/failover", "v");

        Assert.True(put.Succeeded, put.ToString());
        var skipped = await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Relay.UpstreamDialer", "UpstreamMemberSkipped"), TimeSpan.FromSeconds(10));
        Assert.Contains("missing.sock", skipped.Message, StringComparison.Ordinal);
        using var gateway = new GatewayHttp(shield.ClientUrl, fixture.Pki);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostAsync("/version", "", method: HttpMethod.Get)).Status);
    }

    [Fact]
    public async Task With_every_socket_missing_clients_hear_unavailable()
    {
        var missing = Path.Combine(fixture.Plain.WorkingDirectory, "gone.sock");
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, $"unix://{missing},unix://gone:2379", encrypt: false, output: output);

        var put = await shield.Etcdctl(fixture.Pki, commandTimeout: TimeSpan.FromSeconds(5)).RunAsync("put", "unix/none", "v");

        Assert.False(put.Succeeded, put.ToString());
        Assert.Contains("code = Unavailable desc = etcdshield: etcd is unreachable", put.StdErr, StringComparison.Ordinal);
        Assert.Empty((await new Etcdctl(fixture.Plain.ClientUrl).RunAsync("get", "unix/none")).EnsureSuccess().StdOut);
    }

    [Fact]
    public async Task Over_unixs_with_its_upstream_certificate_the_proxy_relays_puts_gets_watches_and_version_to_an_etcd_that_requires_one()
    {
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, "unixs://" + fixture.Tls.ClientSocketPath, encrypt: false, TlsFlags(fixture.Pki.CaFile), output);

        using var channel = GrpcChannels.ToProxy(shield, fixture.Pki);
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = ByteString.CopyFromUtf8("unixs/ok"), WatchId = 1 });
        await watch.NextAsync(r => r.Created);

        (await shield.Etcdctl(fixture.Pki).RunAsync("put", "unixs/ok", "v")).EnsureSuccess();

        var watched = Assert.Single((await watch.NextAsync(r => r.Events.Count > 0)).Events);
        Assert.Equal("v", watched.Kv.Value.ToStringUtf8());

        Assert.Equal("v", (await shield.Etcdctl(fixture.Pki).RunAsync("get", "unixs/ok", "--print-value-only")).EnsureSuccess().StdOut.Trim());
        using var gateway = new GatewayHttp(shield.ClientUrl, fixture.Pki);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostAsync("/version", "", method: HttpMethod.Get)).Status);
    }

    [Fact]
    public async Task Over_unixs_trusting_another_ca_for_etcd_clients_hear_unavailable_and_nothing_is_written()
    {
        var other = fixture.Pki.CreateOtherAuthority("unixs-other-ca");
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, "unixs://" + fixture.Tls.ClientSocketPath, encrypt: false, TlsFlags(other.CertFile), output);

        var put = await shield.Etcdctl(fixture.Pki, commandTimeout: TimeSpan.FromSeconds(5)).RunAsync("put", "unixs/wrong-ca", "v");

        Assert.False(put.Succeeded, put.ToString());
        Assert.Contains("code = Unavailable desc = etcdshield: etcd is unreachable", put.StdErr, StringComparison.Ordinal);
        await using var good = await ShieldServer.StartAsync(fixture.Pki, "unixs://" + fixture.Tls.ClientSocketPath, encrypt: false, TlsFlags(fixture.Pki.CaFile), output);
        Assert.Empty((await good.Etcdctl(fixture.Pki).RunAsync("get", "unixs/wrong-ca")).EnsureSuccess().StdOut);
    }

    private string[] TlsFlags(string trustedCa) =>
        ["--upstream-trusted-ca-file", trustedCa, "--upstream-cert-file", fixture.UpstreamClient.CertFile, "--upstream-key-file", fixture.UpstreamClient.KeyFile];

    private static string B(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
}
