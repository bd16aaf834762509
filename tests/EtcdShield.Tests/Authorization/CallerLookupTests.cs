using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Authorization;
using EtcdShield.Reload;
using EtcdShield.Tls;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace EtcdShield.Tests.Authorization;

/// <summary>Who a request comes from: only the client the TLS handshake admitted, under the trust and policy in force now.</summary>
public sealed class CallerLookupTests : IDisposable
{
    private static readonly AccessPolicy Policy = new(PolicyFile.Parse("""
        identities:
          - name: app
            match: { cn: app }
            keys: [{ prefix: /app/, permission: read }]
        """), "test");

    private readonly X509Certificate2 _ca;
    private readonly X509Certificate2 _otherCa;
    private readonly string _bundle = Path.GetTempFileName();
    private X509Certificate2Collection _anchors;

    public CallerLookupTests()
    {
        _ca = SelfSigned("CN=lookup-ca");
        _otherCa = SelfSigned("CN=other-ca");
        _anchors = [_ca];
    }

    public void Dispose()
    {
        _ca.Dispose();
        _otherCa.Dispose();
        File.Delete(_bundle);
    }

    [Fact]
    public void The_admitted_client_resolves_to_its_policy_identity()
    {
        var (lookup, _) = Lookup();

        var caller = lookup.Of(Connection(Admitted("app")));

        Assert.Equal("app", caller.Identity?.Name);
        Assert.Equal("127.0.0.1:50000", caller.Peer);
    }

    [Fact]
    public void A_connection_without_an_admitted_client_is_not_admitted_even_with_a_client_certificate()
    {
        var (lookup, _) = Lookup();
        var http = new DefaultHttpContext();
        http.Connection.ClientCertificate = _ca;

        var caller = lookup.Of(http);

        Assert.Null(caller.Identity);
        Assert.Equal("matches no identity of the policy", AccessGate.Check(caller, "KV/Range", null));
    }

    [Fact]
    public void A_ca_taken_out_of_the_bundle_ends_what_its_clients_may_do_on_connections_already_open()
    {
        var (lookup, trust) = Lookup();
        var http = Connection(Admitted("app"));
        Assert.Equal("app", lookup.Of(http).Identity?.Name);

        _anchors = [_otherCa];
        File.WriteAllText(_bundle, "the bundle now holds another CA");
        Assert.Equal(ReloadOutcome.Reloaded, trust.ReloadIfChanged());
        var caller = lookup.Of(http);

        Assert.Null(caller.Identity);
        Assert.True(caller.Untrusted);
        Assert.Equal("has a certificate from a CA no longer in --trusted-ca-file", AccessGate.Check(caller, "KV/Range", null));
    }

    private (CallerLookup Lookup, ReloadableFiles<ClientTrust> Trust) Lookup()
    {
        var trust = new ReloadableFiles<ClientTrust>("client trust", [_bundle], () => new ClientTrust(_anchors, []));
        return (new CallerLookup(new ReloadableFiles<AccessPolicy>("policy", [], () => Policy), trust), trust);
    }

    private AdmittedClient Admitted(string commonName)
    {
        var client = new AdmittedClient(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 50000));
        client.Admit(new ClientIdentity(commonName, [], [], [], Convert.ToHexString(SHA256.HashData(_ca.RawData))), [CertificateId.OfAnchor(_ca)]);
        return client;
    }

    private static DefaultHttpContext Connection(AdmittedClient client)
    {
        var http = new DefaultHttpContext();
        http.Features.Set<IConnectionItemsFeature>(new ConnectionItems(client));
        return http;
    }

    private static X509Certificate2 SelfSigned(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return new CertificateRequest(subject, key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    private sealed class ConnectionItems(AdmittedClient client) : IConnectionItemsFeature
    {
        public IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?> { [AdmittedClient.ItemKey] = client };
    }
}
