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
/// An attacker who can write the CRL and CA files (or replay what was once in them) un-revokes a stolen client
/// certificate without any older CRL of its CA: the replayed files simply leave that CA's CRL out, as they did
/// before the CA published one, and a CA without a CRL is not checked. Each such reload fails, is reported, and the
/// CRL in force keeps the client out.
/// </summary>
public sealed class CrlOmissionTests(EtcdWithPki fixture) : IClassFixture<EtcdWithPki>
{
    private const string Trust = "client trust";

    private TestPki Pki => fixture.Pki;

    [Fact]
    public async Task A_crl_file_that_leaves_the_revoking_cas_crl_out_does_not_readmit_the_client()
    {
        var partner = Pki.CreateOtherAuthority("omission-partner-ca", "EtcdShield Omission Partner CA");
        var bundle = Bundle("omission-bundle", Pki.Authority, partner);
        var victim = Pki.IssueClient("omission-victim", ShieldServer.ClientName, dnsNames: ["omission-victim.etcdshield.test"]);
        using var victimCertificate = victim.LoadCertificate();
        var partnerCrl = Crl(partner);
        var crl = Pki.WriteCrlFile("omission", partnerCrl);
        var beforeRevocation = await File.ReadAllTextAsync(crl);
        await using var shield = await ShieldServer.StartAsync(Pki, fixture.Etcd.ClientUrl, flags:
            ["--trusted-ca-file", bundle, "--client-crl-file", crl, "--reload-interval", "1h"]);
        using var failures = new ReloadFailures(shield);
        using var channel = GrpcClients.Channel(shield.ClientUrl, Pki, victim);
        var kv = new KV.KVClient(channel);
        await kv.PutAsync(new PutRequest { Key = B("hostile/omission/open"), Value = B("before") });

        Pki.WriteCrlFile("omission", Crl(Pki.Authority, victimCertificate), partnerCrl);
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow(shield));
        await AssertCutOffAsync(kv, "hostile/omission/open");

        // The attacker puts back the file from before the root CA published a CRL: the partner's CRL, still its newest.
        shield.ErrorsExpected = true;
        await ReplaceAsync(crl, beforeRevocation);

        var outcome = ReloadNow(shield);

        await AssertCutOffAsync(kv, "hostile/omission/open");
        await AssertRefusedAsync(shield, victim, "omission-victim.etcdshield.test", "hostile/omission/new");
        Assert.Equal(ReloadOutcome.Failed, outcome);
        Assert.Contains("no longer in the file", TrustSource(shield).LastError, StringComparison.Ordinal);
        Assert.Equal(1, failures.Of(Trust));
        (await shield.Etcdctl(Pki).RunAsync("put", "hostile/omission/others", "still served")).EnsureSuccess();
    }

    [Fact]
    public async Task Dropping_an_intermediate_and_its_crl_from_the_files_does_not_readmit_the_client_it_revoked()
    {
        var intermediate = Pki.CreateIntermediateAuthority("omission-intermediate", "EtcdShield Omission Intermediate CA");
        var bundle = Bundle("omission-intermediate-bundle", Pki.Authority, intermediate);
        var victim = Pki.IssueClient("omission-intermediate-victim", ShieldServer.ClientName, dnsNames: ["omission-intermediate.etcdshield.test"], issuer: intermediate);
        using var victimCertificate = victim.LoadCertificate();
        var crl = Pki.WriteCrlFile("omission-intermediate", Crl(Pki.Authority), Crl(intermediate, victimCertificate));
        await using var shield = await ShieldServer.StartAsync(Pki, fixture.Etcd.ClientUrl, flags:
            ["--trusted-ca-file", bundle, "--client-crl-file", crl, "--reload-interval", "1h"]);
        using var failures = new ReloadFailures(shield);
        await AssertRefusedAsync(shield, victim, "omission-intermediate.etcdshield.test", "hostile/omission-intermediate/before");

        // Older, genuine files: the bundle without the intermediate (the victim still sends it along and it chains
        // to the root) and the root's CRL alone.
        shield.ErrorsExpected = true;
        await ReplaceAsync(bundle, await File.ReadAllTextAsync(Pki.Authority.CertFile));
        Pki.WriteCrlFile("omission-intermediate", Crl(Pki.Authority));

        var outcome = ReloadNow(shield);

        await AssertRefusedAsync(shield, victim, "omission-intermediate.etcdshield.test", "hostile/omission-intermediate/after");
        Assert.Equal(ReloadOutcome.Failed, outcome);
        Assert.Contains("EtcdShield Omission Intermediate CA", TrustSource(shield).LastError, StringComparison.Ordinal);
        Assert.Equal(1, failures.Of(Trust));
        (await shield.Etcdctl(Pki).RunAsync("put", "hostile/omission-intermediate/others", "still served")).EnsureSuccess();
    }

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static ReloadOutcome ReloadNow(ShieldServer shield) =>
        shield.Services.GetRequiredService<ConfigurationReloader>().ReloadNow()[Trust];

    private static IReloadable TrustSource(ShieldServer shield) =>
        shield.Services.GetServices<IReloadable>().Single(r => r.Name == Trust);

    private static byte[] Crl(TestCertificateAuthority issuer, params X509Certificate2[] revoked) => new TestCrl
    {
        Signer = issuer.Certificate,
        Number = new BigInteger(issuer.TakeCrlNumber()),
        Revoked = [.. revoked.Select(c => (TestCrl.SerialOf(c), (IReadOnlyList<X509Extension>)[]))],
    }.Encode();

    private static async Task AssertCutOffAsync(KV.KVClient kv, string key)
    {
        var cut = await Assert.ThrowsAsync<RpcException>(() => kv.PutAsync(new PutRequest { Key = B(key), Value = B("after") }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, cut.StatusCode);
        Assert.Contains("revoked", cut.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>A new connection of <paramref name="client"/> is refused as revoked, and nothing of it reaches etcd.</summary>
    private async Task AssertRefusedAsync(ShieldServer shield, CertificatePaths client, string dnsName, string key)
    {
        bool IsRevocation(LogEntry e) => e.Is("EtcdShield.Tls.ClientCertificateValidator", "Revoked") && e.Message.Contains(dnsName, StringComparison.Ordinal);
        var before = shield.Logs.Entries.Count(IsRevocation);
        var put = await shield.Etcdctl(Pki, client, TimeSpan.FromSeconds(1)).RunAsync("put", key, "intruder");

        Assert.False(put.Succeeded, put.ToString());
        await Eventually.HoldsAsync(() => Task.FromResult(shield.Logs.Entries.Count(IsRevocation)), count => count > before, TimeSpan.FromSeconds(10));
        Assert.Empty((await new Etcdctl(fixture.Etcd.ClientUrl).RunAsync("get", key)).EnsureSuccess().StdOut);
    }

    private string Bundle(string name, params TestCertificateAuthority[] authorities)
    {
        var path = Path.Combine(Pki.Directory, name + ".pem");
        File.WriteAllText(path, string.Concat(authorities.Select(a => File.ReadAllText(a.CertFile))));
        return path;
    }

    private static async Task ReplaceAsync(string path, string content)
    {
        var temporary = path + ".new";
        await File.WriteAllTextAsync(temporary, content);
        File.Move(temporary, path, overwrite: true);
    }
}
