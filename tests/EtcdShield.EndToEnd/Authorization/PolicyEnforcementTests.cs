using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3lockpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Authorization;

/// <summary>
/// Every decision a client can provoke, through the etcd v3 API with real certificates: one forbidden op inside an
/// otherwise allowed txn, a watch on a forbidden range next to allowed ones, lease revocation of keys outside the
/// grants, lock names, and each way of matching a certificate (OU, DNS SAN, SPIFFE ID, fingerprint).
/// </summary>
[Collection(PolicyProxy.Name)]
public sealed class PolicyEnforcementTests(PolicyFixture fixture)
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private KV.KVClient Kv(CertificatePaths client, out IDisposable channel)
    {
        var grpc = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki, client);
        channel = grpc;
        return new KV.KVClient(grpc);
    }

    private async Task<string?> StoredAsync(string key)
    {
        var result = (await fixture.EtcdDirectly.RunAsync("get", key, "--keys-only")).EnsureSuccess();
        return result.StdOutLines.Count > 0 ? result.StdOutLines[0] : null;
    }

    [Fact]
    public async Task One_forbidden_op_inside_an_allowed_txn_denies_all_of_it_and_nothing_is_written()
    {
        var kv = Kv(fixture.Tenant, out var channel);
        using var _ = channel;

        var denied = await Assert.ThrowsAsync<RpcException>(() => kv.TxnAsync(new TxnRequest
        {
            Success =
            {
                new RequestOp { RequestPut = new PutRequest { Key = B("/tenant/txn/a"), Value = B("1") } },
                new RequestOp { RequestPut = new PutRequest { Key = B("/shared/txn/b"), Value = B("2") } },
            },
        }).ResponseAsync);

        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        Assert.Contains("identity \"tenant\" may not write key \"/shared/txn/b\" (KV/Txn put)", denied.Status.Detail, StringComparison.Ordinal);
        Assert.Null(await StoredAsync("/tenant/txn/a"));

        var allowed = await kv.TxnAsync(new TxnRequest
        {
            Compare = { new Compare { Key = B("/shared/txn/b"), Target = Compare.Types.CompareTarget.Version, Version = 0 } },
            Success = { new RequestOp { RequestPut = new PutRequest { Key = B("/tenant/txn/a"), Value = B("1") } } },
        });
        Assert.True(allowed.Succeeded);
        Assert.Equal("/tenant/txn/a", await StoredAsync("/tenant/txn/a"));
    }

    [Fact]
    public async Task A_forbidden_op_in_a_nested_txn_or_compare_is_found()
    {
        var kv = Kv(fixture.Tenant, out var channel);
        using var _ = channel;
        var nested = new RequestOp
        {
            RequestTxn = new TxnRequest { Failure = { new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = B("/registry/"), RangeEnd = B("/registry0") } } } },
        };

        var inner = await Assert.ThrowsAsync<RpcException>(() => kv.TxnAsync(new TxnRequest { Success = { nested } }).ResponseAsync);
        var compare = await Assert.ThrowsAsync<RpcException>(() => kv.TxnAsync(new TxnRequest
        {
            Compare = { new Compare { Key = B("/registry/secrets/a"), Target = Compare.Types.CompareTarget.Value, Value = B("guess") } },
        }).ResponseAsync);

        Assert.Equal(StatusCode.PermissionDenied, inner.StatusCode);
        Assert.Contains("prefix \"/registry/\" (KV/Txn delete)", inner.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.PermissionDenied, compare.StatusCode);
        Assert.Contains("(KV/Txn compare)", compare.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("guess", compare.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_watch_on_a_forbidden_range_is_cancelled_while_allowed_watches_on_the_stream_go_on()
    {
        using var channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki, fixture.Tenant);
        await using var watch = new WatchSession(channel);

        await watch.CreateAsync(new WatchCreateRequest { Key = B("/tenant/watch/"), RangeEnd = B("/tenant/watch0"), WatchId = 1 });
        await watch.NextAsync(r => r.Created && r.WatchId == 1);
        await watch.CreateAsync(new WatchCreateRequest { Key = B("/registry/"), RangeEnd = B("/registry0"), WatchId = 2 });
        var refused = await watch.NextAsync(r => r.WatchId == 2);

        Assert.True(refused.Created);
        Assert.True(refused.Canceled);
        Assert.Contains("PermissionDenied", refused.CancelReason, StringComparison.Ordinal);
        Assert.Contains("identity \"tenant\" may not read prefix \"/registry/\" (Watch/Watch watch)", refused.CancelReason, StringComparison.Ordinal);

        using (var admin = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki))
        {
            var kv = new KV.KVClient(admin);
            await kv.PutAsync(new PutRequest { Key = B("/registry/watch-leak"), Value = B("must not be seen") });
            await kv.PutAsync(new PutRequest { Key = B("/tenant/watch/x"), Value = B("seen") });
        }

        var change = await watch.NextAsync(r => r.Events.Count > 0);
        Assert.Equal(1, change.WatchId);
        Assert.Equal("seen", Assert.Single(change.Events).Kv.Value.ToStringUtf8());
        Assert.DoesNotContain(watch.Received, r => r.WatchId == 2 && r.Events.Count > 0);
        await fixture.AuditAsync(l => l.GetProperty("identity").GetString() == "tenant" && l.GetProperty("method").GetString() == "Watch/Watch" && l.GetProperty("outcome").GetString() == "denied");
    }

    [Fact]
    public async Task Revoking_a_lease_that_holds_keys_outside_the_grants_is_denied_and_the_keys_stay()
    {
        using var channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki, fixture.Tenant);
        var tenantLeases = new Lease.LeaseClient(channel);
        var lease = await tenantLeases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 300 });
        // An administrator manages every lease, so it can attach a key the tenant may not write to the tenant's lease.
        using var admin = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki);
        await new KV.KVClient(admin).PutAsync(new PutRequest { Key = B("/elsewhere/leased"), Value = B("v"), Lease = lease.ID });

        var revoke = await Assert.ThrowsAsync<RpcException>(() => tenantLeases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease.ID }).ResponseAsync);
        var ttl = await tenantLeases.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = lease.ID });
        var listKeys = await Assert.ThrowsAsync<RpcException>(() => tenantLeases.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = lease.ID, Keys = true }).ResponseAsync);

        Assert.Equal(StatusCode.PermissionDenied, revoke.StatusCode);
        Assert.Contains("it holds keys the identity may not write", revoke.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("/elsewhere", revoke.Status.Detail + listKeys.Status.Detail, StringComparison.Ordinal);
        Assert.True(ttl.TTL > 0);
        Assert.Equal(StatusCode.PermissionDenied, listKeys.StatusCode);
        Assert.Equal("/elsewhere/leased", await StoredAsync("/elsewhere/leased"));

        var own = await tenantLeases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 300 });
        await new KV.KVClient(channel).PutAsync(new PutRequest { Key = B("/tenant/leased"), Value = B("v"), Lease = own.ID });
        await tenantLeases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = own.ID });
        Assert.Null(await StoredAsync("/tenant/leased"));
    }

    [Fact]
    public async Task Lock_names_need_read_write_on_their_prefix()
    {
        using var channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki, fixture.Tenant);
        var leases = new Lease.LeaseClient(channel);
        var lease = await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        var locks = new Protocol.V3lockpb.Lock.LockClient(channel);

        var denied = await Assert.ThrowsAsync<RpcException>(() => locks.LockAsync(new LockRequest { Name = B("/shared/lock"), Lease = lease.ID }).ResponseAsync);
        var held = await locks.LockAsync(new LockRequest { Name = B("/tenant/lock"), Lease = lease.ID });
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        Assert.Contains("prefix \"/shared/lock/\"", denied.Status.Detail, StringComparison.Ordinal);
        Assert.StartsWith("/tenant/lock/", held.Key.ToStringUtf8(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ou", "/storage/a", "/apps/a")]
    [InlineData("dns", "/shared/a", "/storage/a")]
    [InlineData("spiffe", "/apps/a", "/shared/a")]
    [InlineData("fingerprint", "/pinned", "/pinned/child")]
    public async Task Each_way_of_matching_a_certificate_gets_its_own_grants(string matcher, string allowedKey, string forbiddenKey)
    {
        var client = matcher switch
        {
            "ou" => fixture.ByOu,
            "dns" => fixture.ByDns,
            "spiffe" => fixture.BySpiffe,
            _ => fixture.ByFingerprint,
        };
        using (var admin = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki))
        {
            await new KV.KVClient(admin).PutAsync(new PutRequest { Key = B(allowedKey), Value = B("before") });
        }

        var kv = Kv(client, out var channel);
        using var _ = channel;

        // Read-only and write-only grants are tried with the permission they have.
        if (matcher == "spiffe")
        {
            await kv.PutAsync(new PutRequest { Key = B(allowedKey), Value = B("written") });
            var read = await Assert.ThrowsAsync<RpcException>(() => kv.RangeAsync(new RangeRequest { Key = B(allowedKey) }).ResponseAsync);
            Assert.Equal(StatusCode.PermissionDenied, read.StatusCode);
        }
        else
        {
            var range = await kv.RangeAsync(new RangeRequest { Key = B(allowedKey) });
            Assert.Equal("before", Assert.Single(range.Kvs).Value.ToStringUtf8());
        }

        var forbidden = await Assert.ThrowsAsync<RpcException>(() => kv.PutAsync(new PutRequest { Key = B(forbiddenKey), Value = B("x") }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, forbidden.StatusCode);
    }

    [Fact]
    public async Task A_certificate_no_identity_matches_is_refused_in_the_handshake()
    {
        var etcdctl = fixture.As(fixture.Stranger, TimeSpan.FromSeconds(1));

        var put = await etcdctl.RunAsync("put", "/tenant/stranger", "x");

        Assert.False(put.Succeeded, put.ToString());
        Assert.Null(await StoredAsync("/tenant/stranger"));
        await fixture.Shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "NotAllowed") && e.Message.Contains("CN=stranger", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
    }
}
