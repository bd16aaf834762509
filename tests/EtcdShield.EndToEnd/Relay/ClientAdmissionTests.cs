using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using Microsoft.Extensions.Logging;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// Who gets in, with real certificates and the real etcdctl: a client without a certificate, with one from
/// another CA, with an expired one, or with a valid one whose identity is not on the allowlist is refused during
/// the handshake, writes nothing to etcd, and is logged with its identity; identities allowed by DNS name or by
/// a SPIFFE ID pattern work like the common name does. (TLS versions and cipher suites: Hostile/TlsDowngradeTests.)
/// </summary>
public sealed class ClientAdmissionTests(ClientAdmissionTests.Fixture fixture) : IClassFixture<ClientAdmissionTests.Fixture>
{
    private const string AllowedDns = "apiserver.etcdshield.test";
    private const string AllowedSpiffe = "spiffe://etcdshield.test/ns/*/sa/etcd-client";

    // etcdctl 3.4 keeps retrying a refused handshake until its command timeout; short, so refusals are quick.
    private static readonly TimeSpan RefusalTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LogDeadline = TimeSpan.FromSeconds(10);

    public sealed class Fixture : ShieldFixture
    {
        protected override IEnumerable<string> Flags => ["--allow-dns", AllowedDns, "--allow-uri", AllowedSpiffe];

        /// <summary>A refusal must not move etcd's revision, which any other test's write would.</summary>
        private protected override bool OwnsEtcd => true;
    }

    [Fact]
    public async Task A_client_without_a_certificate_is_refused_and_writes_nothing()
    {
        await AssertRefusedAsync(client: null, "admission/none");

        var refusal = await fixture.Shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "NoCertificate"), LogDeadline);
        Assert.Equal(LogLevel.Warning, refusal.Level);
        Assert.Contains("no client certificate", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_certificate_from_another_ca_is_refused_and_writes_nothing()
    {
        // Same name as the allowed client: only the signature is wrong.
        var other = fixture.Pki.CreateOtherAuthority("admission-other-ca");
        var client = fixture.Pki.IssueClient("admission-other", ShieldServer.ClientName, dnsNames: ["other-ca.etcdshield.test"], issuer: other);

        await AssertRefusedAsync(client, "admission/other-ca");

        // Its names are not read before its chain is valid: it is recognised by its subject and fingerprint.
        var refusal = await fixture.Shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "UntrustedCertificate") && e.Message.Contains(Fingerprint(client), StringComparison.Ordinal), LogDeadline);
        Assert.Contains($"CN={ShieldServer.ClientName}", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("certificate not accepted", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_certificate_is_refused_and_writes_nothing()
    {
        var client = fixture.Pki.IssueClient(
            "admission-expired",
            ShieldServer.ClientName,
            dnsNames: ["expired.etcdshield.test"],
            notBefore: DateTimeOffset.UtcNow.AddDays(-10),
            notAfter: DateTimeOffset.UtcNow.AddDays(-1));

        await AssertRefusedAsync(client, "admission/expired");

        var refusal = await fixture.Shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "UntrustedCertificate") && e.Message.Contains(Fingerprint(client), StringComparison.Ordinal), LogDeadline);
        Assert.Contains("NotTimeValid", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_valid_certificate_whose_identity_is_not_allowed_is_refused_and_writes_nothing()
    {
        var client = fixture.Pki.IssueClient("admission-stranger", "stranger", dnsNames: ["stranger.etcdshield.test"], uris: ["spiffe://etcdshield.test/ns/default/sa/stranger"]);

        await AssertRefusedAsync(client, "admission/stranger");

        var refusal = await fixture.Shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "NotAllowed") && e.Message.Contains("CN=stranger", StringComparison.Ordinal), LogDeadline);
        Assert.Contains("DNS:stranger.etcdshield.test", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("URI:spiffe://etcdshield.test/ns/default/sa/stranger", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("not on the allowlist", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_allowed_by_its_dns_name_reads_and_writes()
    {
        var client = fixture.Pki.IssueClient("admission-dns", "not-on-the-list", dnsNames: ["unrelated.etcdshield.test", AllowedDns]);

        await AssertAdmittedAsync(client, "admission/dns");
    }

    [Fact]
    public async Task A_client_whose_certificate_comes_from_an_intermediate_ca_it_sends_along_is_admitted()
    {
        // The proxy trusts only the root; the client's PEM file carries the intermediate after its leaf.
        var intermediate = fixture.Pki.CreateIntermediateAuthority("admission-intermediate", "EtcdShield Test Issuing CA");
        var client = fixture.Pki.IssueClient("admission-chained", ShieldServer.ClientName, issuer: intermediate);

        await AssertAdmittedAsync(client, "admission/chained");
    }

    [Fact]
    public async Task A_client_allowed_by_a_spiffe_id_pattern_reads_and_writes_and_one_outside_it_is_refused()
    {
        var inside = fixture.Pki.IssueClient("admission-spiffe", commonName: null, uris: ["spiffe://etcdshield.test/ns/kube-system/sa/etcd-client"]);
        var outside = fixture.Pki.IssueClient("admission-spiffe-deeper", commonName: null, uris: ["spiffe://etcdshield.test/ns/kube-system/extra/sa/etcd-client"]);

        await AssertAdmittedAsync(inside, "admission/spiffe");
        await AssertRefusedAsync(outside, "admission/spiffe-deeper");

        await fixture.Shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "NotAllowed") && e.Message.Contains("ns/kube-system/extra/sa", StringComparison.Ordinal), LogDeadline);
    }

    private static string Fingerprint(CertificatePaths client)
    {
        using var certificate = client.LoadCertificate();
        return "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(certificate.RawData))[..16];
    }

    private async Task AssertAdmittedAsync(CertificatePaths client, string key)
    {
        var etcdctl = new Etcdctl(fixture.Shield.ClientUrl, fixture.Pki.CaFile, client);

        var put = await etcdctl.RunAsync("put", key, "welcome");
        var get = await etcdctl.RunAsync("get", key, "--print-value-only");

        Assert.True(put.Succeeded, put.ToString());
        Assert.Equal(["welcome"], get.EnsureSuccess().StdOutLines);
    }

    private async Task AssertRefusedAsync(CertificatePaths? client, string key)
    {
        var before = await RevisionAsync();
        var etcdctl = new Etcdctl(fixture.Shield.ClientUrl, fixture.Pki.CaFile, client) { CommandTimeout = RefusalTimeout };

        var put = await etcdctl.RunAsync("put", key, "intruder");

        Assert.False(put.Succeeded, put.ToString());
        Assert.False(put.TimedOut, put.ToString());
        Assert.DoesNotContain("OK", put.StdOut, StringComparison.Ordinal);

        // Nothing reached etcd: the key is absent and etcd's revision did not move.
        var stored = (await fixture.EtcdDirectly.RunAsync("get", key)).EnsureSuccess();
        Assert.Empty(stored.StdOut);
        Assert.Equal(before, await RevisionAsync());
    }

    private async Task<long> RevisionAsync()
    {
        var status = (await fixture.EtcdDirectly.RunAsync("get", "admission/", "--prefix", "--limit=1", "-w", "json")).EnsureSuccess();
        using var json = JsonDocument.Parse(status.StdOut);
        return json.RootElement.GetProperty("header").GetProperty("revision").GetInt64();
    }
}
