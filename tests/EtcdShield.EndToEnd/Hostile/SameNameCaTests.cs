using System.Numerics;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Reload;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A CA renewed under the same name, as kubeadm renews one: the bundle holds the old and the new CA, both named
/// alike. A thief of a certificate the renewed CA issued must be kept out once that CA's CRL lists it, though the
/// old CA's CRL carries the same issuer name; and a CRL is only believed from a CA whose key may sign CRLs.
/// </summary>
public sealed class SameNameCaTests(EtcdWithPki fixture) : IClassFixture<EtcdWithPki>
{
    private const string Trust = "client trust";

    private TestPki Pki => fixture.Pki;

    [Fact]
    public async Task The_renewed_cas_crl_revokes_its_client_on_open_and_new_connections()
    {
        var old = Pki.Authority;
        var renewed = Pki.CreateRenewedAuthority("same-name-renewed", old);
        Assert.Equal(old.Certificate.SubjectName.RawData, renewed.Certificate.SubjectName.RawData);
        var bundle = Bundle("same-name-bundle", old, renewed);
        var stolen = Pki.IssueClient("same-name-stolen", ShieldServer.ClientName, dnsNames: ["same-name-stolen.etcdshield.test"], issuer: renewed);
        var oldClient = Pki.IssueClient("same-name-old-client", ShieldServer.ClientName, dnsNames: ["same-name-old.etcdshield.test"]);
        var crl = Pki.WriteCrlFile("same-name", OldCaCrl());
        await using var shield = await ShieldServer.StartAsync(Pki, fixture.Etcd.ClientUrl, flags:
            ["--trusted-ca-file", bundle, "--client-crl-file", crl, "--reload-interval", "1h"]);
        using var channel = GrpcClients.Channel(shield.ClientUrl, Pki, stolen);
        var kv = new KV.KVClient(channel);
        await kv.PutAsync(new PutRequest { Key = B("hostile/same-name/open"), Value = B("before") });

        // The renewed CA's CRL revokes the stolen certificate, beside the old CA's CRL of the same issuer name.
        using var stolenCertificate = stolen.LoadCertificate();
        Pki.WriteCrlFile("same-name", OldCaCrl(), Crl(renewed, stolenCertificate));
        var outcome = ReloadNow(shield);

        var cut = await Assert.ThrowsAsync<RpcException>(() => kv.PutAsync(new PutRequest { Key = B("hostile/same-name/open"), Value = B("after") }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, cut.StatusCode);
        Assert.Contains("revoked", cut.Status.Detail, StringComparison.Ordinal);
        var refused = await shield.Etcdctl(Pki, stolen, TimeSpan.FromSeconds(1)).RunAsync("put", "hostile/same-name/new", "intruder");
        Assert.False(refused.Succeeded, refused.ToString());
        await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "Revoked") && e.Message.Contains("same-name-stolen.etcdshield.test", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.Empty((await new Etcdctl(fixture.Etcd.ClientUrl).RunAsync("get", "hostile/same-name/new")).EnsureSuccess().StdOut);

        Assert.Equal(ReloadOutcome.Reloaded, outcome);

        // The old CA's clients, named alike and under the same issuer name, are not affected.
        (await shield.Etcdctl(Pki, oldClient).RunAsync("put", "hostile/same-name/old", "fine")).EnsureSuccess();
    }

    [Fact]
    public async Task A_crl_from_a_trusted_ca_whose_key_usage_lacks_crl_sign_is_refused()
    {
        var issuing = Pki.CreateOtherAuthority("no-crl-sign-ca", "EtcdShield Certificates-Only CA", X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.DigitalSignature);
        var bundle = Bundle("no-crl-sign-bundle", Pki.Authority, issuing);
        var crl = Pki.WriteCrlFile("no-crl-sign", OldCaCrl());
        await using var shield = await ShieldServer.StartAsync(Pki, fixture.Etcd.ClientUrl, flags:
            ["--trusted-ca-file", bundle, "--client-crl-file", crl, "--reload-interval", "1h"]);
        shield.ErrorsExpected = true;

        Pki.WriteCrlFile("no-crl-sign", OldCaCrl(), Crl(issuing));

        var outcome = ReloadNow(shield);

        Assert.Equal(ReloadOutcome.Failed, outcome);
        var error = shield.Services.GetServices<IReloadable>().Single(r => r.Name == Trust).LastError;
        Assert.Contains("cRLSign", error, StringComparison.Ordinal);
        Assert.Contains("EtcdShield Certificates-Only CA", error, StringComparison.Ordinal);
        (await shield.Etcdctl(Pki).RunAsync("put", "hostile/no-crl-sign/others", "still served")).EnsureSuccess();
    }

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static ReloadOutcome ReloadNow(ShieldServer shield) =>
        shield.Services.GetRequiredService<ConfigurationReloader>().ReloadNow()[Trust];

    private byte[] OldCaCrl() => Crl(Pki.Authority);

    private static byte[] Crl(TestCertificateAuthority issuer, params X509Certificate2[] revoked) => new TestCrl
    {
        Signer = issuer.Certificate,
        Number = new BigInteger(issuer.TakeCrlNumber()),
        Revoked = [.. revoked.Select(c => (TestCrl.SerialOf(c), (IReadOnlyList<X509Extension>)[]))],
    }.Encode();

    private string Bundle(string name, params TestCertificateAuthority[] authorities)
    {
        var path = Path.Combine(Pki.Directory, name + ".pem");
        File.WriteAllText(path, string.Concat(authorities.Select(a => File.ReadAllText(a.CertFile))));
        return path;
    }
}
