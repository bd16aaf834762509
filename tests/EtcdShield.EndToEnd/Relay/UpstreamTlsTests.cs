using EtcdShield.EndToEnd.Infrastructure;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// The proxy's own side of mutual TLS, towards an etcd that requires client certificates: with its upstream
/// certificate it relays; misconfigured (no certificate, or trusting the wrong CA for etcd) it answers
/// clients UNAVAILABLE without etcd internals, writes nothing, and says in its log why etcd is unreachable.
/// </summary>
public sealed class UpstreamTlsTests(UpstreamTlsTests.Fixture fixture, ITestOutputHelper output) : IClassFixture<UpstreamTlsTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        private EtcdProcess? etcd;

        public TestPki Pki { get; } = new();

        internal EtcdProcess Etcd => etcd ?? throw new InvalidOperationException("Not started.");

        internal CertificatePaths UpstreamClient { get; private set; } = null!;

        internal Etcdctl EtcdDirectly => new(Etcd.ClientUrl, Pki.CaFile, UpstreamClient);

        public async Task InitializeAsync()
        {
            UpstreamClient = Pki.IssueClient("upstream-client", "etcdshield-upstream");
            etcd = await EtcdProcess.StartAsync(new EtcdOptions { ClientTls = EtcdClientTls.From(Pki, clientCertAuth: true) });
        }

        public async Task DisposeAsync()
        {
            if (etcd is not null)
            {
                await etcd.DisposeAsync();
            }

            Pki.Dispose();
        }
    }

    [Fact]
    public async Task With_its_upstream_certificate_the_proxy_relays_to_an_etcd_that_requires_one()
    {
        await using var shield = await StartAsync(["--upstream-trusted-ca-file", fixture.Pki.CaFile, "--upstream-cert-file", fixture.UpstreamClient.CertFile, "--upstream-key-file", fixture.UpstreamClient.KeyFile]);

        var put = await shield.Etcdctl(fixture.Pki).RunAsync("put", "upstream-tls/ok", "v");

        Assert.True(put.Succeeded, put.ToString());
        Assert.NotEmpty((await fixture.EtcdDirectly.RunAsync("get", "upstream-tls/ok")).EnsureSuccess().StdOut);
    }

    [Fact]
    public async Task Without_an_upstream_certificate_clients_hear_unavailable_and_the_log_says_why()
    {
        await using var shield = await StartAsync(["--upstream-trusted-ca-file", fixture.Pki.CaFile]);

        await AssertUnreachableAsync(shield, "upstream-tls/no-cert");
    }

    [Fact]
    public async Task Trusting_another_ca_for_etcd_clients_hear_unavailable_and_the_log_says_why()
    {
        var other = fixture.Pki.CreateOtherAuthority("upstream-other-ca");
        await using var shield = await StartAsync(["--upstream-trusted-ca-file", other.CertFile, "--upstream-cert-file", fixture.UpstreamClient.CertFile, "--upstream-key-file", fixture.UpstreamClient.KeyFile]);

        await AssertUnreachableAsync(shield, "upstream-tls/wrong-ca");
    }

    private Task<ShieldServer> StartAsync(IEnumerable<string> flags) =>
        ShieldServer.StartAsync(fixture.Pki, fixture.Etcd.ClientUrl, encrypt: false, flags, output);

    private async Task AssertUnreachableAsync(ShieldServer shield, string key)
    {
        var put = await shield.Etcdctl(fixture.Pki, commandTimeout: TimeSpan.FromSeconds(5)).RunAsync("put", key, "v");

        Assert.False(put.Succeeded, put.ToString());
        Assert.True(put.StdErr.Contains("code = Unavailable desc = etcdshield: etcd is unreachable", StringComparison.Ordinal), put.ToString());
        Assert.False(put.StdErr.Contains("Exception", StringComparison.Ordinal), put.ToString());
        Assert.Empty((await fixture.EtcdDirectly.RunAsync("get", key)).EnsureSuccess().StdOut);
        var logged = await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Relay.RequestRelay", "UpstreamUnreachable"), TimeSpan.FromSeconds(10));
        Assert.Equal(LogLevel.Warning, logged.Level);
        Assert.Contains("KV/Put", logged.Message, StringComparison.Ordinal);
        Assert.NotNull(logged.Exception);
    }
}
