using System.Net;
using EtcdShield.Checks;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.Tests.Checks;

public sealed class CertificateChecksTests : IDisposable
{
    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    [Fact]
    public void A_good_serving_certificate_matches_its_key_may_serve_and_chains_to_the_trusted_ca()
    {
        var lines = Checked.Lines(r => CertificateChecks.ServingCertificate(Checked.Serving(_pki), r));

        Assert.All(lines, l => Assert.Equal(CheckStatus.Ok, l.Status));
        Assert.Contains(lines, l => l.Detail == "'CN=localhost' in --cert-file matches --key-file");
        Assert.Contains(lines, l => l.Detail.StartsWith("'CN=localhost' chains to 'CN=EtcdShield Test Root CA, O=EtcdShield Tests' in --trusted-ca-file", StringComparison.Ordinal));
    }

    [Fact]
    public void A_key_of_another_certificate_fails()
    {
        var other = _pki.IssueServer("other");
        var options = Checked.Serving(_pki) with { KeyFile = other.KeyFile };

        var lines = Checked.Lines(r => CertificateChecks.ServingCertificate(options, r));

        var failure = Assert.Single(lines);
        Assert.Equal(CheckStatus.Fail, failure.Status);
        Assert.StartsWith($"cannot load --cert-file {_pki.ServerCert.CertFile} with --key-file {other.KeyFile}", failure.Detail, StringComparison.Ordinal);
        Assert.EndsWith("--key-file must hold the private key --cert-file was issued for", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_certificate_without_server_auth_fails()
    {
        var client = _pki.IssueClient("client-only", "localhost");
        var options = Checked.Serving(_pki) with { CertFile = client.CertFile, KeyFile = client.KeyFile };

        var lines = Checked.Lines(r => CertificateChecks.ServingCertificate(options, r));

        Assert.StartsWith("'CN=localhost' lacks the extended key usage serverAuth", Checked.Single(lines, CheckStatus.Fail).Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_certificate_from_a_ca_outside_the_trusted_file_names_the_issuer_clients_need()
    {
        var other = _pki.CreateOtherAuthority();
        var served = _pki.IssueServer("foreign", issuer: other);
        var options = Checked.Serving(_pki) with { CertFile = served.CertFile, KeyFile = served.KeyFile };

        var lines = Checked.Lines(r => CertificateChecks.ServingCertificate(options, r));

        var warning = Checked.Single(lines, CheckStatus.Warn);
        Assert.Contains("does not chain to a CA in --trusted-ca-file: clients must trust its issuer 'CN=EtcdShield Untrusted Test CA, O=EtcdShield Tests'", warning.Detail, StringComparison.Ordinal);
        Checked.NoFailure(lines);
    }

    [Fact]
    public void Every_listen_and_advertised_host_must_be_in_the_certificate()
    {
        var served = _pki.IssueServer("named", dnsNames: ["etcd-1.example.com"], ipAddresses: [IPAddress.Loopback]);
        var options = Checked.Serving(_pki) with
        {
            CertFile = served.CertFile,
            KeyFile = served.KeyFile,
            ListenClientUrls = [new Uri("https://127.0.0.1:2379"), new Uri("https://10.1.2.3:2379")],
            AdvertiseClientUrls = [new Uri("https://etcd-1.example.com:2379"), new Uri("https://etcd-2.example.com:2379")],
        };

        var lines = Checked.Lines(r => CertificateChecks.ServingHosts(options, r));

        Assert.Equal(
            [
                "ok   serving-cert-hosts: 'CN=localhost' covers 127.0.0.1 (--listen-client-urls)",
                "FAIL serving-cert-hosts: 'CN=localhost' does not cover 10.1.2.3 of --listen-client-urls https://10.1.2.3:2379/: clients checking the host name refuse it; reissue it with 10.1.2.3 as an IP address subject alternative name",
                "ok   serving-cert-hosts: 'CN=localhost' covers etcd-1.example.com (--advertise-client-urls)",
                "FAIL serving-cert-hosts: 'CN=localhost' does not cover etcd-2.example.com of --advertise-client-urls https://etcd-2.example.com:2379/: clients checking the host name refuse it; reissue it with etcd-2.example.com as a DNS name subject alternative name",
            ],
            lines.Select(l => l.ToString()));
    }

    [Fact]
    public void An_ipv6_listen_address_is_matched_against_the_ip_addresses_of_the_certificate()
    {
        var served = _pki.IssueServer("v6", ipAddresses: [IPAddress.IPv6Loopback]);
        var options = Checked.Serving(_pki) with { CertFile = served.CertFile, KeyFile = served.KeyFile, ListenClientUrls = [new Uri("https://[::1]:2379")], AdvertiseClientUrls = [] };

        var lines = Checked.Lines(r => CertificateChecks.ServingHosts(options, r));

        Assert.Equal("ok   serving-cert-hosts: 'CN=localhost' covers ::1 (--listen-client-urls)", Assert.Single(lines).ToString());
    }

    [Fact]
    public void A_listen_url_naming_a_host_other_than_localhost_fails_as_serve_refuses_it()
    {
        // The certificate covers the name, so only the listen rule (ShieldHost binds an IP address or localhost) can fail it.
        var served = _pki.IssueServer("named-listen", dnsNames: ["etcd-1.example.com"]);
        var options = Checked.Serving(_pki) with
        {
            CertFile = served.CertFile,
            KeyFile = served.KeyFile,
            ListenClientUrls = [new Uri("https://etcd-1.example.com:2379"), new Uri("https://LOCALHOST:2379"), new Uri("https://[::1]:2379")],
            AdvertiseClientUrls = [],
            MetricsListenUrl = new Uri("http://etcd-1.example.com:2381"),
        };

        var lines = Checked.Lines(r => CertificateChecks.ServingHosts(options, r));

        var failures = lines.Where(l => l.Status == CheckStatus.Fail).Select(l => l.ToString()).ToList();
        Assert.Equal(
            [
                "FAIL listen: --listen-client-urls https://etcd-1.example.com:2379/ names the host etcd-1.example.com: the proxy listens only on an IP address or localhost and refuses to start; listen on the address and name the host in --advertise-client-urls",
                "FAIL listen: --metrics-listen-url http://etcd-1.example.com:2381/ names the host etcd-1.example.com: the proxy listens only on an IP address or localhost and refuses to start; listen on the address and name the host in --advertise-client-urls",
            ],
            failures.Where(l => l.StartsWith("FAIL listen:", StringComparison.Ordinal)));
    }

    [Fact]
    public void Advertising_every_address_warns_since_no_client_can_connect_to_it()
    {
        // What --listen-client-urls https://0.0.0.0:2379 alone gives: the advertised URLs default to the listen URLs,
        // so member lists tell clients 0.0.0.0, and no host name is checked at all.
        var options = Checked.Serving(_pki) with { ListenClientUrls = [new Uri("https://0.0.0.0:2379")], AdvertiseClientUrls = [new Uri("https://0.0.0.0:2379"), new Uri("https://[::]:2379")] };

        var lines = Checked.Lines(r => CertificateChecks.ServingHosts(options, r));

        Assert.DoesNotContain(lines, l => l.Status == CheckStatus.Fail);
        Assert.Equal(
            [
                "warn serving-cert-hosts: --advertise-client-urls https://0.0.0.0:2379/ names no host: member lists give it to clients, which cannot connect to it; set --advertise-client-urls to the addresses or names clients use",
                "warn serving-cert-hosts: --advertise-client-urls https://[::]:2379/ names no host: member lists give it to clients, which cannot connect to it; set --advertise-client-urls to the addresses or names clients use",
            ],
            lines.Where(l => l.Status == CheckStatus.Warn).Select(l => l.ToString()));
    }

    [Fact]
    public void Listening_on_every_address_is_checked_by_the_advertised_names()
    {
        var options = Checked.Serving(_pki) with { ListenClientUrls = [new Uri("https://0.0.0.0:2379")], AdvertiseClientUrls = [new Uri("https://localhost:2379")] };

        var lines = Checked.Lines(r => CertificateChecks.ServingHosts(options, r));

        Assert.All(lines, l => Assert.Equal(CheckStatus.Ok, l.Status));
        Assert.Contains(lines, l => l.Detail == "'CN=localhost' covers localhost (--advertise-client-urls)");
    }

    [Fact]
    public void An_expired_certificate_fails_one_close_to_expiry_warns_and_the_rest_pass()
    {
        var now = DateTimeOffset.UtcNow;
        var expired = _pki.IssueServer("expired", notBefore: now.AddDays(-30), notAfter: now.AddDays(-1));
        var soon = _pki.IssueClient("soon", "shield-upstream", notAfter: now.AddDays(10));
        var options = Checked.Serving(_pki) with { CertFile = expired.CertFile, KeyFile = expired.KeyFile, UpstreamCertFile = soon.CertFile, UpstreamKeyFile = soon.KeyFile, UpstreamTrustedCaFile = _pki.CaFile };

        var lines = Checked.Lines(r => CertificateChecks.Expiry(options, r));

        Assert.Equal(4, lines.Count);
        Assert.Matches(@"^FAIL expiry: serving certificate 'CN=localhost' expired at \S+Z; renew it$", lines[0].ToString());
        Assert.Matches(@"^ok   expiry: client-ca certificate 'CN=EtcdShield Test Root CA, O=EtcdShield Tests' expires at \S+Z, in 36\d\d(\.\d)? days$", lines[1].ToString());
        Assert.Matches(@"^warn expiry: upstream-client certificate 'CN=shield-upstream' expires at \S+Z, in (9\.\d|10) days \(within --cert-expiry-warning\); renew it$", lines[2].ToString());
        Assert.StartsWith("upstream-ca certificate", lines[3].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_crl_of_the_trusted_ca_passes_and_one_of_another_ca_fails()
    {
        var good = _pki.WriteCrl("good", []);
        var foreign = _pki.WriteCrl("foreign", [], issuer: _pki.CreateOtherAuthority());

        var passing = Checked.Lines(r => CertificateChecks.ClientTrustFiles(Checked.Serving(_pki) with { ClientCrlFile = good }, r));
        var failing = Checked.Lines(r => CertificateChecks.ClientTrustFiles(Checked.Serving(_pki) with { ClientCrlFile = foreign }, r));

        Assert.All(passing, l => Assert.Equal(CheckStatus.Ok, l.Status));
        Assert.Contains(passing, l => l.Check == "crl" && l.Detail.Contains("is signed by a CA in --trusted-ca-file", StringComparison.Ordinal));
        var failure = Checked.Single(failing, CheckStatus.Fail);
        Assert.Equal("crl", failure.Check);
        Assert.Contains("is not from a CA in --trusted-ca-file", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_crl_past_its_next_update_warns()
    {
        var stale = _pki.WriteCrl("stale", [], nextUpdate: DateTimeOffset.UtcNow.AddSeconds(-30));

        var lines = Checked.Lines(r => CertificateChecks.ClientTrustFiles(Checked.Serving(_pki) with { ClientCrlFile = stale }, r));

        Assert.Contains("was due for an update", Checked.Single(lines, CheckStatus.Warn).Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_trusted_ca_file_without_certificates_fails()
    {
        var empty = Path.Combine(_pki.Directory, "empty.pem");
        File.WriteAllText(empty, "not a certificate\n");

        var lines = Checked.Lines(r => CertificateChecks.ClientTrustFiles(Checked.Serving(_pki) with { TrustedCaFile = empty }, r));

        Assert.Equal($"FAIL client-ca: --trusted-ca-file {empty} holds no PEM certificate; it must hold the PEM certificates of the CAs that issue client certificates", Assert.Single(lines).ToString());
    }

    [Fact]
    public void The_upstream_client_certificate_must_match_its_key()
    {
        var upstream = _pki.IssueClient("upstream", "shield");
        var other = _pki.IssueClient("other", "other");

        var good = Checked.Lines(r => CertificateChecks.Upstream(Checked.Serving(_pki) with { UpstreamCertFile = upstream.CertFile, UpstreamKeyFile = upstream.KeyFile, UpstreamTrustedCaFile = _pki.CaFile }, r));
        var bad = Checked.Lines(r => CertificateChecks.Upstream(Checked.Serving(_pki) with { UpstreamCertFile = upstream.CertFile, UpstreamKeyFile = other.KeyFile }, r));

        Assert.Equal(["ok   upstream-cert: 'CN=shield' in --upstream-cert-file matches --upstream-key-file", "ok   upstream-ca: --upstream-trusted-ca-file holds 1 CA certificate(s)"], good.Select(l => l.ToString()));
        Assert.Equal("upstream-cert", Checked.Single(bad, CheckStatus.Fail).Check);
    }
}
