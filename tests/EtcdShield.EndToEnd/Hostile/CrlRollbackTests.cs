using System.Numerics;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Reload;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// An attacker who can write --client-crl-file (or replay what was once in it) tries to un-revoke a stolen client
/// certificate with genuine, correctly signed CRLs: the CA's older CRL from before the revocation, a delta CRL on
/// its own or after its base, and CRLs whose critical extensions narrow what they cover. Each reload fails, is
/// reported as failed, and the last good CRL keeps the client out, on open connections and new ones.
/// </summary>
public sealed class CrlRollbackTests(EtcdWithPki fixture) : IClassFixture<EtcdWithPki>
{
    private const string Trust = "client trust";

    private TestPki Pki => fixture.Pki;

    private TestCertificateAuthority Ca => fixture.Pki.Authority;

    [Fact]
    public async Task The_older_crl_from_before_a_revocation_does_not_readmit_the_client()
    {
        var victim = Pki.IssueClient("rollback-victim", ShieldServer.ClientName, dnsNames: ["rollback-victim.etcdshield.test"]);
        var crl = Pki.WriteCrl("rollback", []);
        var olderCrl = await File.ReadAllTextAsync(crl);
        await using var shield = await StartAsync(crl);
        using var failures = new ReloadFailures(shield);
        using var channel = GrpcClients.Channel(shield.ClientUrl, Pki, victim);
        var kv = new KV.KVClient(channel);
        await kv.PutAsync(new PutRequest { Key = B("hostile/rollback/open"), Value = B("before") });

        Pki.WriteCrl("rollback", [victim]);
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow(shield));
        await AssertCutOffAsync(kv, "hostile/rollback/open");

        // The attacker puts the CA's own, genuine, older CRL back: it does not list the victim.
        shield.ErrorsExpected = true;
        await ReplaceAsync(crl, olderCrl);

        var outcome = ReloadNow(shield);

        await AssertCutOffAsync(kv, "hostile/rollback/open");
        await AssertRefusedAsync(shield, victim, "rollback-victim.etcdshield.test", "hostile/rollback/new");
        Assert.Equal(ReloadOutcome.Failed, outcome);
        var error = await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Reload.ConfigurationReloader", "ReloadFailed") && e.Message.Contains(Trust, StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        Assert.Contains("older than CRL number", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, failures.Of(Trust));
        await AssertHealthSaysNotReloadedAsync(shield);
        (await shield.Etcdctl(Pki).RunAsync("put", "hostile/rollback/others", "still served")).EnsureSuccess();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_delta_crl_is_refused_whether_alone_or_after_its_base(bool withBase)
    {
        var name = withBase ? "delta-with-base" : "delta-alone";
        var victim = Pki.IssueClient($"{name}-victim", ShieldServer.ClientName, dnsNames: [$"{name}.etcdshield.test"]);
        using var victimCertificate = victim.LoadCertificate();
        var baseNumber = new BigInteger(Ca.TakeCrlNumber());
        var full = new TestCrl { Signer = Ca.Certificate, Number = baseNumber, Revoked = [(TestCrl.SerialOf(victimCertificate), [])] }.Encode();
        var crl = Pki.WriteCrlFile(name, full);
        await using var shield = await StartAsync(crl);
        using var failures = new ReloadFailures(shield);
        shield.ErrorsExpected = true;

        // Genuine and newer than the base, but it only lists what changed since: nothing.
        var delta = new TestCrl
        {
            Signer = Ca.Certificate,
            Number = new BigInteger(Ca.TakeCrlNumber()),
            ThisUpdate = DateTimeOffset.UtcNow,
            Extensions = [TestCrl.DeltaIndicator(baseNumber)],
        }.Encode();
        Pki.WriteCrlFile(name, withBase ? [full, delta] : [delta]);

        var outcome = ReloadNow(shield);

        await AssertRefusedAsync(shield, victim, $"{name}.etcdshield.test", $"hostile/{name}");
        Assert.Equal(ReloadOutcome.Failed, outcome);
        Assert.Contains("delta CRL", TrustSource(shield).LastError, StringComparison.Ordinal);
        Assert.Equal(1, failures.Of(Trust));
        (await shield.Etcdctl(Pki).RunAsync("put", $"hostile/{name}/others", "still served")).EnsureSuccess();
    }

    [Theory]
    [InlineData("unknown-critical")]
    [InlineData("issuing-distribution-point")]
    [InlineData("unknown-critical-entry")]
    public async Task A_newer_crl_with_a_critical_extension_the_proxy_does_not_implement_is_refused(string extension)
    {
        var victim = Pki.IssueClient($"{extension}-victim", ShieldServer.ClientName, dnsNames: [$"{extension}.etcdshield.test"]);
        using var bystander = Pki.IssueClient($"{extension}-bystander", "bystander").LoadCertificate();
        var crl = Pki.WriteCrl(extension, [victim]);
        await using var shield = await StartAsync(crl);
        using var failures = new ReloadFailures(shield);
        shield.ErrorsExpected = true;

        // A newer, genuine CRL that no longer lists the victim, with an extension that changes what it means.
        var narrowed = new TestCrl
        {
            Signer = Ca.Certificate,
            Number = new BigInteger(Ca.TakeCrlNumber()),
            ThisUpdate = DateTimeOffset.UtcNow,
            Extensions = extension switch
            {
                "unknown-critical" => [TestCrl.Unknown(critical: true)],
                "issuing-distribution-point" => [TestCrl.OnlyUserCertificates()],
                _ => [],
            },
            Revoked = extension == "unknown-critical-entry"
                ? [(TestCrl.SerialOf(bystander), [TestCrl.Unknown(critical: true)])]
                : [],
        }.Encode();
        Pki.WriteCrlFile(extension, narrowed);

        var outcome = ReloadNow(shield);

        await AssertRefusedAsync(shield, victim, $"{extension}.etcdshield.test", $"hostile/{extension}");
        Assert.Equal(ReloadOutcome.Failed, outcome);
        Assert.Contains("critical extension", TrustSource(shield).LastError, StringComparison.Ordinal);
        Assert.Equal(1, failures.Of(Trust));
        (await shield.Etcdctl(Pki).RunAsync("put", $"hostile/{extension}/others", "still served")).EnsureSuccess();
    }

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private Task<ShieldServer> StartAsync(string crl) =>
        ShieldServer.StartAsync(Pki, fixture.Etcd.ClientUrl, flags: ["--client-crl-file", crl, "--reload-interval", "1h"]);

    private static ReloadOutcome ReloadNow(ShieldServer shield) =>
        shield.Services.GetRequiredService<ConfigurationReloader>().ReloadNow()[Trust];

    private static IReloadable TrustSource(ShieldServer shield) =>
        shield.Services.GetServices<IReloadable>().Single(r => r.Name == Trust);

    private static async Task AssertCutOffAsync(KV.KVClient kv, string key)
    {
        var cut = await Assert.ThrowsAsync<RpcException>(() => kv.PutAsync(new PutRequest { Key = B(key), Value = B("after") }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, cut.StatusCode);
        Assert.Contains("revoked", cut.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>A new connection of <paramref name="client"/> is refused as revoked, and nothing of it reaches etcd.</summary>
    private async Task AssertRefusedAsync(ShieldServer shield, CertificatePaths client, string dnsName, string key)
    {
        var put = await shield.Etcdctl(Pki, client, TimeSpan.FromSeconds(1)).RunAsync("put", key, "intruder");

        Assert.False(put.Succeeded, put.ToString());
        await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "Revoked") && e.Message.Contains(dnsName, StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.Empty((await new Etcdctl(fixture.Etcd.ClientUrl).RunAsync("get", key)).EnsureSuccess().StdOut);
    }

    private static async Task AssertHealthSaysNotReloadedAsync(ShieldServer shield)
    {
        using var http = new HttpClient();
        var health = await http.GetStringAsync(new Uri(shield.MetricsUrl + "/health"));
        Assert.Contains("\"status\":\"degraded\"", health, StringComparison.Ordinal);
        Assert.Contains($"{Trust} not reloaded", health, StringComparison.Ordinal);
    }

    private static async Task ReplaceAsync(string path, string content)
    {
        var temporary = path + ".new";
        await File.WriteAllTextAsync(temporary, content);
        File.Move(temporary, path, overwrite: true);
    }
}
