using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A certificate thief keeps a watch open on a stolen certificate; the operator revokes it with a CRL. The open
/// stream must end PERMISSION_DENIED at once and deliver nothing written after the revocation.
/// </summary>
public sealed class WatchAfterRevocationTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Fact]
    public async Task A_watch_stream_of_a_revoked_certificate_ends_and_sees_nothing_after()
    {
        await using var proxy = await ReloadingShield.StartAsync("""
            identities:
              - name: thief
                match: { cn: stolen }
                keys: [{ prefix: /registry/, permission: read }]
            """);
        var stolen = proxy.Pki.IssueClient("hostile-stolen", "stolen");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, stolen);
        using var admin = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki);
        var kv = new KV.KVClient(admin);
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/registry/"), RangeEnd = B("/registry0"), WatchId = 1 });
        await watch.NextAsync(r => r.Created && r.WatchId == 1);
        await kv.PutAsync(new PutRequest { Key = B("/registry/secrets/before"), Value = B("seen before the revocation") });
        await watch.NextAsync(r => r.Events.Any(e => e.Kv.Key == B("/registry/secrets/before")));

        proxy.Revoke(stolen);
        await kv.PutAsync(new PutRequest { Key = B("/registry/secrets/after"), Value = B("must not arrive") });

        var ended = await Assert.ThrowsAsync<RpcException>(() => watch.NextAsync(_ => false));
        Assert.Equal(StatusCode.PermissionDenied, ended.StatusCode);
        Assert.Contains("revoked", ended.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("stolen", ended.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(watch.Received, r => r.Events.Any(e => e.Kv.Key == B("/registry/secrets/after")));
    }

    [Fact]
    public async Task A_stream_opened_before_the_revocation_cannot_keep_leases_alive_either()
    {
        await using var proxy = await ReloadingShield.StartAsync("""
            identities:
              - name: thief
                match: { cn: stolen }
                methods: [Lease]
            """);
        var stolen = proxy.Pki.IssueClient("hostile-stolen-lease", "stolen");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, stolen);
        var lease = await new Lease.LeaseClient(channel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        using var keepAlive = new Lease.LeaseClient(channel).LeaseKeepAlive();
        await keepAlive.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = lease.ID });
        Assert.True(await keepAlive.ResponseStream.MoveNext());

        proxy.Revoke(stolen);

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var ended = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await keepAlive.ResponseStream.MoveNext(deadline.Token))
            {
            }
        });
        Assert.Equal(StatusCode.PermissionDenied, ended.StatusCode);
        Assert.Contains("revoked", ended.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_watch_stream_of_a_client_whose_ca_leaves_the_bundle_ends()
    {
        var pki = new TestPki();
        var partner = pki.CreateOtherAuthority("hostile-partner-ca", "EtcdShield Hostile Partner CA");
        var client = pki.IssueClient("hostile-partner-client", "stolen", issuer: partner);
        var bundle = Path.Combine(pki.Directory, "hostile-bundle.pem");
        await File.WriteAllTextAsync(bundle, await File.ReadAllTextAsync(pki.CaFile) + await File.ReadAllTextAsync(partner.CertFile));
        await using var proxy = await ReloadingShield.StartAsync(
            """
            identities:
              - name: partner
                match: { cn: stolen }
                keys: [{ prefix: /registry/, permission: read }]
            """,
            ["--trusted-ca-file", bundle],
            pki);
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, client);
        using var admin = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki);
        await using var watch = new WatchSession(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/registry/"), RangeEnd = B("/registry0"), WatchId = 1 });
        await watch.NextAsync(r => r.Created && r.WatchId == 1);

        await proxy.ReplaceTrustedCasAsync(bundle, await File.ReadAllTextAsync(pki.CaFile));
        await new KV.KVClient(admin).PutAsync(new PutRequest { Key = B("/registry/secrets/after"), Value = B("must not arrive") });

        var ended = await Assert.ThrowsAsync<RpcException>(() => watch.NextAsync(_ => false));
        Assert.Equal(StatusCode.PermissionDenied, ended.StatusCode);
        Assert.Contains("no longer in --trusted-ca-file", ended.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(watch.Received, r => r.Events.Any(e => e.Kv.Key == B("/registry/secrets/after")));
    }
}
