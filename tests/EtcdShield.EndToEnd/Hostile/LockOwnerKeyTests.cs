using System.Globalization;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Grpc.Core;
using static EtcdShield.EndToEnd.Encryption.StoredValue;
using LockClient = EtcdShield.Protocol.V3lockpb.Lock.LockClient;
using LockRequest = EtcdShield.Protocol.V3lockpb.LockRequest;
using UnlockRequest = EtcdShield.Protocol.V3lockpb.UnlockRequest;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// etcd's own Lock service writes its owner keys server-side with empty plaintext values, which no reader of an
/// encrypted prefix may be served: one Lock call by an authorized writer made every Range and Watch over the lock's
/// prefix fail, for everyone. The proxy serves Lock and Unlock itself, as etcd's lock server does (a session on the
/// caller's lease and a mutex), through its own encrypting KV path, so owner keys hold envelopes like every value.
/// </summary>
public sealed class LockOwnerKeyTests(EncryptingProxy etcd) : IClassFixture<EncryptingProxy>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Etcdctl_lock_works_through_the_proxy()
    {
        var name = ShieldedEtcd.NewPrefix("lock-etcdctl") + "mutex";

        var result = await etcd.Shield.Etcdctl(etcd.Pki).RunAsync("lock", name, "echo", "held-by-etcdctl");

        result.EnsureSuccess();
        Assert.Equal(["held-by-etcdctl"], result.StdOutLines);
    }

    [Fact]
    public async Task A_lock_rpc_returns_the_owner_key_and_etcd_stores_an_envelope_there()
    {
        var name = ShieldedEtcd.NewPrefix("lock-sealed") + "mutex";
        var lease = await GrantAsync();
        var locks = new LockClient(etcd.ProxyChannel);

        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease }, deadline: DateTime.UtcNow + Deadline);
        var stored = await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = held.Key });
        var unlocked = await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        Assert.Equal(OwnerKey(name, lease), held.Key.ToStringUtf8());
        var owner = Assert.Single(stored.Kvs);
        AssertSealed(owner.Value, "");
        Assert.Equal(lease, owner.Lease);
        Assert.Equal(owner.CreateRevision, held.Header.Revision);
        Assert.True(unlocked.Header.Revision > held.Header.Revision);
        Assert.Null(await etcd.StoredAsync(held.Key.ToStringUtf8()));
    }

    [Fact]
    public async Task A_reader_ranges_and_watches_the_lock_prefix_while_the_lock_is_held()
    {
        var enclosing = ShieldedEtcd.NewPrefix("lock-read");
        var name = enclosing + "mutex";
        var reader = etcd.NewProxyChannel();
        await etcd.PutAsync(enclosing + "config", "readable-neighbour");
        await using var watch = await WatchStream.OpenAsync(reader, new WatchCreateRequest { Key = Utf8(enclosing), RangeEnd = Utf8(enclosing[..^1] + "0") });
        var lease = await GrantAsync();
        var locks = new LockClient(etcd.ProxyChannel);

        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease }, deadline: DateTime.UtcNow + Deadline);
        var created = await watch.ReadEventsAsync(1);
        var range = await new KV.KVClient(reader).RangeAsync(new RangeRequest { Key = Utf8(enclosing), RangeEnd = Utf8(enclosing[..^1] + "0") });
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });
        var deleted = await watch.ReadEventsAsync(1);

        Assert.Equal(held.Key, created[0].Kv.Key);
        Assert.Equal(Event.Types.EventType.Put, created[0].Type);
        Assert.True(created[0].Kv.Value.IsEmpty);
        Assert.Equal(
            [(enclosing + "config", "readable-neighbour"), (held.Key.ToStringUtf8(), "")],
            range.Kvs.Select(kv => (kv.Key.ToStringUtf8(), kv.Value.ToStringUtf8())).Order());
        Assert.Equal(Event.Types.EventType.Delete, deleted[0].Type);
        Assert.Equal(held.Key, deleted[0].Kv.Key);
    }

    [Fact]
    public async Task Two_contending_locks_serialize_the_second_returns_only_after_the_first_unlocks()
    {
        var name = ShieldedEtcd.NewPrefix("lock-contend") + "mutex";
        var first = await GrantAsync();
        var second = await GrantAsync();
        var locks = new LockClient(etcd.ProxyChannel);
        var secondLocks = new LockClient(etcd.NewProxyChannel());
        await using var stored = await WatchStream.OpenAsync(etcd.EtcdChannel, new WatchCreateRequest { Key = Utf8(OwnerKey(name, second)) });

        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = first }, deadline: DateTime.UtcNow + Deadline);
        using var waiting = secondLocks.LockAsync(new LockRequest { Name = Utf8(name), Lease = second }, deadline: DateTime.UtcNow + Deadline);
        var queued = await stored.ReadEventsAsync(1);
        // The second owner key exists, with a later create revision than the first: its Lock cannot have returned.
        Assert.False(waiting.ResponseAsync.IsCompleted);
        var unlocked = await locks.UnlockAsync(new UnlockRequest { Key = held.Key });
        var acquired = await waiting;

        Assert.Equal(OwnerKey(name, first), held.Key.ToStringUtf8());
        Assert.Equal(OwnerKey(name, second), acquired.Key.ToStringUtf8());
        AssertSealed(queued[0].Kv.Value, "");
        Assert.True(queued[0].Kv.CreateRevision > held.Header.Revision);
        Assert.True(acquired.Header.Revision >= unlocked.Header.Revision);
        await locks.UnlockAsync(new UnlockRequest { Key = acquired.Key });
    }

    [Fact]
    public async Task A_lock_whose_deadline_passes_while_it_waits_leaves_no_owner_key()
    {
        var name = ShieldedEtcd.NewPrefix("lock-deadline") + "mutex";
        var holder = await GrantAsync();
        var waiter = await GrantAsync();
        var locks = new LockClient(etcd.ProxyChannel);
        await using var stored = await WatchStream.OpenAsync(etcd.EtcdChannel, new WatchCreateRequest { Key = Utf8(OwnerKey(name, waiter)) });
        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = holder }, deadline: DateTime.UtcNow + Deadline);

        var expired = await Assert.ThrowsAsync<RpcException>(() => locks.LockAsync(
            new LockRequest { Name = Utf8(name), Lease = waiter },
            deadline: DateTime.UtcNow + TimeSpan.FromSeconds(5)).ResponseAsync);
        var events = await stored.ReadEventsAsync(2);
        var remaining = await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(name + "/"), RangeEnd = Utf8(name + "0") });
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        Assert.Equal(StatusCode.DeadlineExceeded, expired.StatusCode);
        Assert.Equal([Event.Types.EventType.Put, Event.Types.EventType.Delete], events.Select(e => e.Type));
        Assert.Equal([held.Key.ToStringUtf8()], remaining.Kvs.Select(kv => kv.Key.ToStringUtf8()));
    }

    [Fact]
    public async Task A_lock_cancelled_by_its_client_while_it_waits_leaves_no_owner_key()
    {
        var name = ShieldedEtcd.NewPrefix("lock-cancel") + "mutex";
        var holder = await GrantAsync();
        var waiter = await GrantAsync();
        var locks = new LockClient(etcd.ProxyChannel);
        await using var stored = await WatchStream.OpenAsync(etcd.EtcdChannel, new WatchCreateRequest { Key = Utf8(OwnerKey(name, waiter)) });
        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = holder }, deadline: DateTime.UtcNow + Deadline);
        using var cancel = new CancellationTokenSource();

        using var waiting = locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = waiter }, cancellationToken: cancel.Token);
        var queued = await stored.ReadEventsAsync(1);
        await cancel.CancelAsync();
        var cancelled = await Assert.ThrowsAsync<RpcException>(() => waiting.ResponseAsync);
        var withdrawn = await stored.ReadEventsAsync(1);
        var remaining = await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(name + "/"), RangeEnd = Utf8(name + "0") });
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        Assert.Equal(StatusCode.Cancelled, cancelled.StatusCode);
        Assert.Equal(Event.Types.EventType.Put, queued[0].Type);
        Assert.Equal(Event.Types.EventType.Delete, withdrawn[0].Type);
        Assert.Equal([held.Key.ToStringUtf8()], remaining.Kvs.Select(kv => kv.Key.ToStringUtf8()));
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-5L)]
    public async Task A_lock_without_a_granted_lease_is_refused_and_stores_nothing(long lease)
    {
        var name = ShieldedEtcd.NewPrefix("lock-lease") + "mutex";
        var locks = new LockClient(etcd.ProxyChannel);

        var refused = await Assert.ThrowsAsync<RpcException>(() => locks.LockAsync(
            new LockRequest { Name = Utf8(name), Lease = lease }, deadline: DateTime.UtcNow + Deadline).ResponseAsync);
        var stored = await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(name + "/"), RangeEnd = Utf8(name + "0") });

        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.StartsWith("etcdshield: ", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(stored.Kvs);
    }

    private static string OwnerKey(string name, long lease) => name + "/" + lease.ToString("x", CultureInfo.InvariantCulture);

    private async Task<long> GrantAsync() =>
        (await new Lease.LeaseClient(etcd.ProxyChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
}
