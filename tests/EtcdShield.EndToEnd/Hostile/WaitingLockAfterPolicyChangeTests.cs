using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using LockClient = EtcdShield.Protocol.V3lockpb.Lock.LockClient;
using LockRequest = EtcdShield.Protocol.V3lockpb.LockRequest;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A client whose grant on a lock's name is removed while its Lock waits for the holder to let go: the wait must
/// end PERMISSION_DENIED at once, and its owner key must go, instead of the lock being granted later under
/// authority the client no longer has.
/// </summary>
public sealed class WaitingLockAfterPolicyChangeTests
{
    private const string Granted = """
        identities:
          - name: waiter
            match: { cn: waiter }
            methods: [Lease]
            keys: [{ prefix: /locks/, permission: readwrite }]
        """;

    private const string Removed = """
        identities:
          - name: waiter
            match: { cn: waiter }
            methods: [Lease]
            keys: [{ prefix: /elsewhere/, permission: readwrite }]
        """;

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);

    [Fact]
    public async Task A_waiting_lock_ends_when_the_grant_on_its_name_is_removed_and_leaves_no_owner_key()
    {
        await using var proxy = await ReloadingShield.StartAsync(Granted);
        var waiter = proxy.Pki.IssueClient("hostile-waiter", "waiter");
        using var channel = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki, waiter);
        using var admin = GrpcClients.Channel(proxy.Shield.ClientUrl, proxy.Pki);
        var adminLease = await new Lease.LeaseClient(admin).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        var held = await new LockClient(admin).LockAsync(new LockRequest { Name = Utf8("/locks/l"), Lease = adminLease.ID });
        var lease = await new Lease.LeaseClient(channel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        var kv = new KV.KVClient(admin);
        Task<RangeResponse> OwnerKeys() => kv.RangeAsync(new RangeRequest { Key = Utf8("/locks/l/"), RangeEnd = Utf8("/locks/l0"), KeysOnly = true }).ResponseAsync;

        // Without the judge the deadline ends the wait instead, DEADLINE_EXCEEDED: the lock is never let go.
        using var waiting = new LockClient(channel).LockAsync(new LockRequest { Name = Utf8("/locks/l"), Lease = lease.ID }, deadline: DateTime.UtcNow.AddSeconds(30));
        await Eventually.HoldsAsync(OwnerKeys, r => r.Kvs.Count == 2, TimeSpan.FromSeconds(10));
        await proxy.ReplacePolicyAsync(Removed);

        var ended = await Assert.ThrowsAsync<RpcException>(() => waiting.ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, ended.StatusCode);
        Assert.Contains("identity \"waiter\" may not read and write prefix \"/locks/l/\" (Lock/Lock lock)", ended.Status.Detail, StringComparison.Ordinal);
        Assert.Equal([held.Key], (await OwnerKeys()).Kvs.Select(k => k.Key));
    }
}
