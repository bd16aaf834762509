using System.Globalization;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3lockpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// Mallory, who may use leases and write her own prefix, goes after alice's leases with the real etcdctl and raw
/// gRPC: lists them, keeps them alive, reads their TTL, revokes an empty one, and attaches her own key to one so
/// that alice can no longer revoke it. A lease belongs to the identity that granted it; to everyone else it is
/// not there. Alice's own lease life goes on through the proxy as it does against etcd.
/// </summary>
public sealed class ForeignLeaseTests(ForeignLeaseFixture fixture) : IClassFixture<ForeignLeaseFixture>
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static long Id(string hex) => long.Parse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private async Task<long> RemainingTtlDirectlyAsync(string lease)
    {
        var output = (await fixture.EtcdDirectly.RunAsync("lease", "timetolive", lease, "-w", "json")).EnsureSuccess().StdOut;
        return System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("ttl").GetInt64();
    }

    [Fact]
    public async Task Listing_leases_shows_only_the_callers_own()
    {
        var alices = await fixture.GrantAsync(fixture.Alice);
        var mallorys = await fixture.GrantAsync(fixture.Mallory);

        var seenByMallory = (await fixture.As(fixture.Mallory).RunAsync("lease", "list")).EnsureSuccess().StdOut;
        var seenByAlice = (await fixture.As(fixture.Alice).RunAsync("lease", "list")).EnsureSuccess().StdOut;

        Assert.Contains(mallorys, seenByMallory, StringComparison.Ordinal);
        Assert.DoesNotContain(alices, seenByMallory, StringComparison.Ordinal);
        Assert.Contains(alices, seenByAlice, StringComparison.Ordinal);
        Assert.DoesNotContain(mallorys, seenByAlice, StringComparison.Ordinal);
        Assert.Contains(alices, (await fixture.ThroughProxy.RunAsync("lease", "list")).EnsureSuccess().StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Keeping_another_identitys_lease_alive_is_answered_as_for_an_unknown_lease()
    {
        var alices = await fixture.GrantAsync(fixture.Alice);

        var once = await fixture.As(fixture.Mallory).RunAsync("lease", "keep-alive", "--once", alices);

        Assert.False(once.Succeeded, once.ToString());
        Assert.DoesNotContain("keepalived", once.StdOut, StringComparison.Ordinal);

        // On one stream, a keep-alive for her own lease is answered by etcd and one for alice's by TTL 0.
        var mallorys = await fixture.GrantAsync(fixture.Mallory);
        using var channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki, fixture.Mallory);
        using var stream = new Lease.LeaseClient(channel).LeaseKeepAlive();
        await stream.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = Id(alices) });
        Assert.True(await stream.ResponseStream.MoveNext());
        Assert.Equal(Id(alices), stream.ResponseStream.Current.ID);
        Assert.Equal(0, stream.ResponseStream.Current.TTL);
        await stream.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = Id(mallorys) });
        Assert.True(await stream.ResponseStream.MoveNext());
        Assert.Equal(Id(mallorys), stream.ResponseStream.Current.ID);
        Assert.Equal(300, stream.ResponseStream.Current.TTL);
        await stream.RequestStream.CompleteAsync();
    }

    [Fact]
    public async Task Attaching_a_key_to_another_identitys_lease_is_refused_so_its_owner_can_still_revoke_it()
    {
        var alices = await fixture.GrantAsync(fixture.Alice);

        var put = await fixture.As(fixture.Mallory).RunAsync("put", "--lease=" + alices, "/mallory/anchor", "v");
        using var channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki, fixture.Mallory);
        var txn = await Assert.ThrowsAsync<RpcException>(() => new KV.KVClient(channel).TxnAsync(new TxnRequest
        {
            Success = { new RequestOp { RequestTxn = new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = B("/mallory/anchor2"), Value = B("v"), Lease = Id(alices) } } } } } },
        }).ResponseAsync);
        var lockCall = await Assert.ThrowsAsync<RpcException>(() => new Protocol.V3lockpb.Lock.LockClient(channel).LockAsync(new LockRequest { Name = B("/mallory/lock"), Lease = Id(alices) }).ResponseAsync);

        Assert.False(put.Succeeded, put.ToString());
        Assert.Contains("permission denied", put.StdErr, StringComparison.Ordinal);
        Assert.Equal(StatusCode.PermissionDenied, txn.StatusCode);
        Assert.Equal(StatusCode.PermissionDenied, lockCall.StatusCode);
        Assert.Empty((await fixture.EtcdDirectly.RunAsync("get", "/mallory/", "--prefix", "--keys-only")).EnsureSuccess().StdOutLines);
        (await fixture.As(fixture.Alice).RunAsync("lease", "revoke", alices)).EnsureSuccess();
    }

    [Fact]
    public async Task Revoking_another_identitys_empty_lease_is_refused_and_the_lease_stays()
    {
        var alices = await fixture.GrantAsync(fixture.Alice);

        var revoke = await fixture.As(fixture.Mallory).RunAsync("lease", "revoke", alices);

        Assert.False(revoke.Succeeded, revoke.ToString());
        Assert.Contains("permission denied", revoke.StdErr, StringComparison.Ordinal);
        Assert.True(await RemainingTtlDirectlyAsync(alices) > 0);
    }

    [Fact]
    public async Task The_ttl_of_another_identitys_lease_is_not_shown()
    {
        var alices = await fixture.GrantAsync(fixture.Alice);

        var ttl = await fixture.As(fixture.Mallory).RunAsync("lease", "timetolive", alices);

        Assert.False(ttl.Succeeded, ttl.ToString());
        Assert.DoesNotContain("remaining", ttl.StdOut, StringComparison.Ordinal);
        Assert.Contains("permission denied", ttl.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_denial_never_names_a_key_the_caller_may_not_read()
    {
        var alices = await fixture.GrantAsync(fixture.Alice);
        // An administrator may attach any key to any lease; alice may not read that key.
        (await fixture.ThroughProxy.RunAsync("put", "--lease=" + alices, "/hidden/payroll-2027", "v")).EnsureSuccess();

        var keys = await fixture.As(fixture.Alice).RunAsync("lease", "timetolive", "--keys", alices);
        var revoke = await fixture.As(fixture.Alice).RunAsync("lease", "revoke", alices);

        Assert.False(keys.Succeeded, keys.ToString());
        Assert.False(revoke.Succeeded, revoke.ToString());
        Assert.Contains("permission denied", keys.StdErr, StringComparison.Ordinal);
        Assert.Contains("permission denied", revoke.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("payroll", keys.StdErr + keys.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("payroll", revoke.StdErr + revoke.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("payroll", string.Join('\n', fixture.Shield.Logs.Entries.Select(e => e.Message)), StringComparison.Ordinal);
        Assert.True(await RemainingTtlDirectlyAsync(alices) > 0);
    }

    [Fact]
    public async Task A_lease_id_chosen_by_the_client_must_carry_the_callers_tag()
    {
        var alices = await fixture.GrantAsync(fixture.Alice);
        using var channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki, fixture.Mallory);

        // The ID next to alice's carries alice's tag: granting it would make it alice's lease, held by mallory.
        var denied = await Assert.ThrowsAsync<RpcException>(() => new Lease.LeaseClient(channel).LeaseGrantAsync(new LeaseGrantRequest { ID = Id(alices) + 1, TTL = 60 }).ResponseAsync);

        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        var stored = await fixture.EtcdDirectly.RunAsync("lease", "timetolive", (Id(alices) + 1).ToString("x", CultureInfo.InvariantCulture));
        Assert.Contains("already expired", stored.EnsureSuccess().StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_owners_own_lease_life_works_through_the_proxy()
    {
        var etcdctl = fixture.As(fixture.Alice);
        var lease = await fixture.GrantAsync(fixture.Alice, ttl: 120);

        (await etcdctl.RunAsync("put", "--lease=" + lease, "/alice/session", "here")).EnsureSuccess();
        Assert.Contains("keepalived with TTL(120)", (await etcdctl.RunAsync("lease", "keep-alive", "--once", lease)).EnsureSuccess().StdOut, StringComparison.Ordinal);
        Assert.Contains("/alice/session", (await etcdctl.RunAsync("lease", "timetolive", "--keys", lease)).EnsureSuccess().StdOut, StringComparison.Ordinal);
        Assert.Contains(lease, (await etcdctl.RunAsync("lease", "list")).EnsureSuccess().StdOut, StringComparison.Ordinal);
        Assert.Equal("here", (await etcdctl.RunAsync("get", "/alice/session", "--print-value-only")).EnsureSuccess().StdOut.Trim());
        (await etcdctl.RunAsync("lease", "revoke", lease)).EnsureSuccess();
        Assert.Empty((await fixture.EtcdDirectly.RunAsync("get", "/alice/session")).EnsureSuccess().StdOutLines);
        Assert.Contains("already expired", (await etcdctl.RunAsync("lease", "timetolive", lease)).EnsureSuccess().StdOut, StringComparison.Ordinal);
    }
}
