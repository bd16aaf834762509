using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Reload;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.EndToEnd.Authorization;

/// <summary>
/// Hot reload with live traffic: a new server certificate, a CRL that revokes a client, and a changed policy
/// take effect without a restart, without dropping open connections or failing a request in flight; a broken
/// file keeps the last good configuration and says so.
/// </summary>
public sealed class ReloadTests : IAsyncLifetime
{
    private TestPki Pki { get; } = new();
    private EtcdProcess? etcd;

    private EtcdProcess Etcd => etcd ?? throw new InvalidOperationException("Not started.");

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    public async Task InitializeAsync() => etcd = await SharedEtcd.GetAsync();

    public Task DisposeAsync()
    {
        Pki.Dispose();
        return Task.CompletedTask;
    }

    private static IReadOnlyDictionary<string, ReloadOutcome> ReloadNow(ShieldServer shield) =>
        shield.Services.GetRequiredService<ConfigurationReloader>().ReloadNow();

    [Fact]
    public async Task A_replaced_server_certificate_is_presented_to_new_connections_while_open_ones_carry_on()
    {
        var (directory, certFile, keyFile) = CopyOfServerCertificate();
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--cert-file", certFile, "--key-file", keyFile, "--reload-interval", "1h"]);
        using var before = Pki.ServerCert.LoadCertificate();
        Assert.Equal(before.SerialNumber, await PresentedSerialAsync(shield));

        using var channel = GrpcClients.Channel(shield.ClientUrl, Pki);
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = B("reload/cert/"), RangeEnd = B("reload/cert0"), WatchId = 7 });
        await watch.NextAsync(r => r.Created);
        await using var traffic = LiveTraffic.Start(new KV.KVClient(channel), "reload/cert/");
        await traffic.WaitForRequestsAsync(20);

        var renewed = Pki.IssueServer("server-renewed");
        File.Copy(renewed.KeyFile, keyFile, overwrite: true);
        File.Copy(renewed.CertFile, certFile, overwrite: true);
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow(shield)["server certificate"]);

        using var after = renewed.LoadCertificate();
        Assert.Equal(after.SerialNumber, await PresentedSerialAsync(shield));
        await traffic.WaitForRequestsAsync(traffic.Completed + 20);
        Assert.Empty(await traffic.StopAsync());

        // The watch opened before the reload still delivers what happens after it.
        await new KV.KVClient(channel).PutAsync(new PutRequest { Key = B("reload/cert/after"), Value = B("still watched") });
        await watch.NextAsync(r => r.WatchId == 7 && r.Events.Any(e => e.Kv.Key.ToStringUtf8() == "reload/cert/after"));
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task A_certificate_that_does_not_match_its_key_keeps_the_last_good_one_serving()
    {
        var (directory, certFile, keyFile) = CopyOfServerCertificate();
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--cert-file", certFile, "--key-file", keyFile, "--reload-interval", "1h"]);
        shield.ErrorsExpected = true;

        // Half a rotation: the new certificate is in place, its key is not.
        var renewed = Pki.IssueServer("server-half-renewed");
        File.Copy(renewed.CertFile, certFile, overwrite: true);
        Assert.Equal(ReloadOutcome.Failed, ReloadNow(shield)["server certificate"]);

        using var before = Pki.ServerCert.LoadCertificate();
        Assert.Equal(before.SerialNumber, await PresentedSerialAsync(shield));
        (await shield.Etcdctl(Pki).RunAsync("put", "reload/half", "still served")).EnsureSuccess();
        await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Reload.ConfigurationReloader", "ReloadFailed") && e.Message.Contains("server certificate", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        using var http = new HttpClient();
        Assert.Contains("server certificate not reloaded", await http.GetStringAsync(new Uri(shield.MetricsUrl + "/health")), StringComparison.Ordinal);

        // The key arrives: the next check completes the rotation.
        File.Copy(renewed.KeyFile, keyFile, overwrite: true);
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow(shield)["server certificate"]);
        using var after = renewed.LoadCertificate();
        Assert.Equal(after.SerialNumber, await PresentedSerialAsync(shield));
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task A_crl_that_revokes_a_client_refuses_its_next_connection_and_spares_everyone_else()
    {
        var victim = Pki.IssueClient("reload-victim", ShieldServer.ClientName, dnsNames: ["victim.etcdshield.test"]);
        var crl = Pki.WriteCrl("reload", []);
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--client-crl-file", crl, "--reload-interval", "1h"]);
        (await shield.Etcdctl(Pki, victim).RunAsync("put", "reload/crl/before", "ok")).EnsureSuccess();

        using var channel = GrpcClients.Channel(shield.ClientUrl, Pki);
        using var victimChannel = GrpcClients.Channel(shield.ClientUrl, Pki, victim);
        var victimKv = new KV.KVClient(victimChannel);
        await victimKv.PutAsync(new PutRequest { Key = B("reload/crl/open"), Value = B("before") });
        await using var traffic = LiveTraffic.Start(new KV.KVClient(channel), "reload/crl/");
        await traffic.WaitForRequestsAsync(20);
        Pki.WriteCrl("reload", [victim]);
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow(shield)["client trust"]);

        // The victim's connection from before the CRL stays open, but may do nothing more.
        var cut = await Assert.ThrowsAsync<RpcException>(() => victimKv.PutAsync(new PutRequest { Key = B("reload/crl/open"), Value = B("after") }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, cut.StatusCode);
        Assert.Contains("revoked", cut.Status.Detail, StringComparison.Ordinal);

        var refused = await shield.Etcdctl(Pki, victim, TimeSpan.FromSeconds(1)).RunAsync("put", "reload/crl/after", "no");
        Assert.False(refused.Succeeded, refused.ToString());
        await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "Revoked") && e.Message.Contains("victim.etcdshield.test", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        (await shield.Etcdctl(Pki).RunAsync("put", "reload/crl/others", "fine")).EnsureSuccess();
        await traffic.WaitForRequestsAsync(traffic.Completed + 20);
        Assert.Empty(await traffic.StopAsync());
        Assert.Empty((await new Etcdctl(Etcd.ClientUrl).RunAsync("get", "reload/crl/after")).EnsureSuccess().StdOut);
    }

    [Fact]
    public async Task A_ca_added_to_the_trusted_bundle_admits_its_clients_from_the_next_connection()
    {
        var partner = Pki.CreateOtherAuthority("reload-partner-ca", "EtcdShield Partner CA");
        var partnerClient = Pki.IssueClient("reload-partner-client", ShieldServer.ClientName, dnsNames: ["partner.etcdshield.test"], issuer: partner);
        var bundle = Path.Combine(Pki.Directory, "reload-bundle.pem");
        File.Copy(Pki.CaFile, bundle);
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--trusted-ca-file", bundle, "--reload-interval", "1h"]);
        var before = await shield.Etcdctl(Pki, partnerClient, TimeSpan.FromSeconds(1)).RunAsync("put", "reload/ca/partner", "no");
        Assert.False(before.Succeeded, before.ToString());

        await ReplaceAsync(bundle, await File.ReadAllTextAsync(Pki.CaFile) + await File.ReadAllTextAsync(partner.CertFile));
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow(shield)["client trust"]);

        (await shield.Etcdctl(Pki, partnerClient).RunAsync("put", "reload/ca/partner", "yes")).EnsureSuccess();
        (await shield.Etcdctl(Pki).RunAsync("put", "reload/ca/own", "still")).EnsureSuccess();
    }

    [Fact]
    public async Task A_client_revoked_at_start_up_is_never_admitted()
    {
        var revoked = Pki.IssueClient("startup-revoked", ShieldServer.ClientName, dnsNames: ["startup-revoked.etcdshield.test"]);
        var crl = Pki.WriteCrl("startup", [revoked]);
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--client-crl-file", crl]);

        var put = await shield.Etcdctl(Pki, revoked, TimeSpan.FromSeconds(1)).RunAsync("put", "reload/startup", "no");

        Assert.False(put.Succeeded, put.ToString());
        await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "Revoked"), TimeSpan.FromSeconds(10));
        (await shield.Etcdctl(Pki).RunAsync("put", "reload/startup-other", "yes")).EnsureSuccess();
    }

    [Fact]
    public async Task A_changed_policy_applies_to_the_next_request_on_an_open_connection_without_a_signal()
    {
        var writer = Pki.IssueClient("reload-writer", "writer");
        var policy = Path.Combine(Pki.Directory, "reload-policy.yaml");
        await File.WriteAllTextAsync(policy, Policy("read"));
        // The timer alone picks up the change: no SIGHUP, no call into the proxy.
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--policy-file", policy, "--reload-interval", "200ms"]);
        using var channel = GrpcClients.Channel(shield.ClientUrl, Pki, writer);
        var kv = new KV.KVClient(channel);
        var denied = await Assert.ThrowsAsync<RpcException>(() => kv.PutAsync(new PutRequest { Key = B("/reload/policy/a"), Value = B("1") }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);

        await ReplaceAsync(policy, Policy("readwrite"));

        await Eventually.HoldsAsync(
            async () =>
            {
                try
                {
                    await kv.PutAsync(new PutRequest { Key = B("/reload/policy/a"), Value = B("1") });
                    return true;
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.PermissionDenied)
                {
                    return false;
                }
            },
            allowed => allowed,
            TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task A_narrowed_policy_applies_to_watches_created_later_on_a_stream_already_open()
    {
        var writer = Pki.IssueClient("narrowed-writer", "writer");
        var policy = Path.Combine(Pki.Directory, "narrowed-policy.yaml");
        await File.WriteAllTextAsync(policy, Policy("read"));
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--policy-file", policy, "--reload-interval", "1h"]);
        using var channel = GrpcClients.Channel(shield.ClientUrl, Pki, writer);
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/reload/policy/w"), WatchId = 1 });
        Assert.False((await watch.NextAsync(r => r.WatchId == 1)).Canceled);

        await ReplaceAsync(policy, Policy("read").Replace("/reload/policy/", "/reload/elsewhere/", StringComparison.Ordinal));
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow(shield)["policy"]);
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/reload/policy/w"), WatchId = 2 });

        var refused = await watch.NextAsync(r => r.WatchId == 2);
        Assert.True(refused.Canceled);
        Assert.Contains("PermissionDenied", refused.CancelReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_broken_policy_keeps_the_last_good_one_and_shows_in_health()
    {
        var writer = Pki.IssueClient("broken-writer", "writer");
        var policy = Path.Combine(Pki.Directory, "broken-policy.yaml");
        await File.WriteAllTextAsync(policy, Policy("readwrite"));
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--policy-file", policy, "--reload-interval", "1h"]);
        shield.ErrorsExpected = true;
        using var channel = GrpcClients.Channel(shield.ClientUrl, Pki, writer);
        var kv = new KV.KVClient(channel);

        await ReplaceAsync(policy, Policy("readwrite").Replace("methods", "mehtods", StringComparison.Ordinal));
        Assert.Equal(ReloadOutcome.Failed, ReloadNow(shield)["policy"]);

        await kv.PutAsync(new PutRequest { Key = B("/reload/policy/kept"), Value = B("1") });
        var error = await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Reload.ConfigurationReloader", "ReloadFailed"), TimeSpan.FromSeconds(5));
        Assert.Contains("unknown field 'mehtods'", error.Message, StringComparison.Ordinal);
        using var http = new HttpClient();
        var health = await http.GetStringAsync(new Uri(shield.MetricsUrl + "/health"));
        Assert.Contains("\"status\":\"degraded\"", health, StringComparison.Ordinal);
        Assert.Contains("policy not reloaded", health, StringComparison.Ordinal);
    }

    /// <summary>The test server certificate and key copied where a test may replace them.</summary>
    private (string Directory, string CertFile, string KeyFile) CopyOfServerCertificate()
    {
        var directory = Directory.CreateTempSubdirectory("etcdshield-reload-").FullName;
        var certFile = Path.Combine(directory, "server.pem");
        var keyFile = Path.Combine(directory, "server-key.pem");
        File.Copy(Pki.ServerCert.CertFile, certFile);
        File.Copy(Pki.ServerCert.KeyFile, keyFile);
        return (directory, certFile, keyFile);
    }

    private static string Policy(string permission) => $$"""
        identities:
          - name: writer
            match: { cn: writer }
            methods: [Maintenance/Status]
            keys:
              - { prefix: /reload/policy/, permission: {{permission}} }
        """;

    private static async Task ReplaceAsync(string path, string content)
    {
        var temporary = path + ".new";
        await File.WriteAllTextAsync(temporary, content);
        File.Move(temporary, path, overwrite: true);
    }

    private X509ChainPolicy TrustingTheTestCa()
    {
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(X509CertificateLoader.LoadCertificateFromFile(Pki.CaFile));
        return policy;
    }

    private async Task<string> PresentedSerialAsync(ShieldServer shield)
    {
        var endpoint = new Uri(shield.ClientUrl);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint.Host, endpoint.Port);
        using var client = ShieldServer.DefaultClient(Pki).LoadWithPrivateKey();
        using var certificate = X509CertificateLoader.LoadPkcs12(client.Export(X509ContentType.Pkcs12), null);
        await using var tls = new SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ClientCertificates = [certificate],
            ApplicationProtocols = [SslApplicationProtocol.Http2],
            CertificateChainPolicy = TrustingTheTestCa(),
        });
        return tls.RemoteCertificate!.GetSerialNumberString();
    }
}
