using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Grpc.Net.Client;
using static EtcdShield.EndToEnd.Encryption.StoredValue;
using LockClient = EtcdShield.Protocol.V3lockpb.Lock.LockClient;
using LockRequest = EtcdShield.Protocol.V3lockpb.LockRequest;
using UnlockRequest = EtcdShield.Protocol.V3lockpb.UnlockRequest;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// The lock service (v3lockpb) is served by the proxy itself, as etcd's own lock server does it (a session on the
/// caller's lease and a mutex on <c>name/</c>), through the encrypting KV path: the owner key
/// <c>name/lease-id-in-hex</c> holds an envelope of the empty value, so it reads and watches like any other key, and
/// Lock RPC holders and clientv3 mutexes (etcdctl lock) queue behind each other. The attacks this closes are in
/// <c>Hostile/LockOwnerKeyTests</c>.
/// </summary>
public sealed class LockServiceTests(LockServiceTests.Proxies etcd) : IClassFixture<LockServiceTests.Proxies>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Lock_and_unlock_work_through_the_encrypting_proxy_and_etcd_stores_a_sealed_owner_key()
    {
        var name = ShieldedEtcd.NewPrefix("lock") + "mutex";
        var lease = await GrantAsync(etcd.ProxyChannel);
        var locks = new LockClient(etcd.ProxyChannel);

        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease }, deadline: DateTime.UtcNow + Deadline);
        var stored = await etcd.StoredAsync(held.Key.ToStringUtf8());
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        Assert.StartsWith(name + "/", held.Key.ToStringUtf8(), StringComparison.Ordinal);
        AssertSealed(stored, "");
        Assert.Null(await etcd.StoredAsync(held.Key.ToStringUtf8()));
    }

    [Fact]
    public async Task A_lock_owner_key_reads_through_the_encrypting_proxy_as_an_empty_value()
    {
        var name = ShieldedEtcd.NewPrefix("lock-read") + "mutex";
        var lease = await GrantAsync(etcd.ProxyChannel);
        var locks = new LockClient(etcd.ProxyChannel);
        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease }, deadline: DateTime.UtcNow + Deadline);
        var key = held.Key.ToStringUtf8();

        var range = await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = held.Key });
        var etcdctl = await etcd.Shield.Etcdctl(etcd.Pki).RunAsync("get", "--prefix", name);
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        var owner = Assert.Single(range.Kvs);
        Assert.Equal(ByteString.Empty, owner.Value);
        Assert.Equal(lease, owner.Lease);
        etcdctl.EnsureSuccess();
        Assert.Equal([key, ""], etcdctl.StdOutLines);
    }

    [Fact]
    public async Task A_watcher_on_a_lock_name_through_the_encrypting_proxy_sees_the_owner_key_come_and_go()
    {
        var name = ShieldedEtcd.NewPrefix("lock-watch") + "mutex";
        var lease = await GrantAsync(etcd.ProxyChannel);
        await using var watch = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest
        {
            Key = Utf8(name + "/"),
            RangeEnd = Utf8(name + "0"),
        });
        var locks = new LockClient(etcd.ProxyChannel);

        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease }, deadline: DateTime.UtcNow + Deadline);
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });
        var events = await watch.ReadEventsAsync(2);

        Assert.Equal([held.Key, held.Key], events.Select(e => e.Kv.Key));
        Assert.Equal([Event.Types.EventType.Put, Event.Types.EventType.Delete], events.Select(e => e.Type));
        Assert.Equal(ByteString.Empty, events[0].Kv.Value);
    }

    [Fact]
    public async Task A_clientv3_mutex_through_the_proxy_queues_behind_a_lock_rpc_holder_of_the_same_name()
    {
        var name = ShieldedEtcd.NewPrefix("lock-mixed") + "mutex";
        var lease = await GrantAsync(etcd.ProxyChannel);
        var locks = new LockClient(etcd.ProxyChannel);
        await using var watch = await WatchStream.OpenAsync(etcd.EtcdChannel, new WatchCreateRequest
        {
            Key = Utf8(name + "/"),
            RangeEnd = Utf8(name + "0"),
        });

        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease }, deadline: DateTime.UtcNow + Deadline);
        // etcdctl lock is a client-side mutex: its (empty) value goes through the proxy's Txn path and is sealed.
        var contending = etcd.Shield.Etcdctl(etcd.Pki).RunAsync(["lock", name, "echo", "got-it"], standardInput: null, timeout: TimeSpan.FromSeconds(30));
        var queued = await watch.ReadEventsAsync(2);
        Assert.False(contending.IsCompleted);
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });
        var acquired = await contending;

        Assert.Equal(held.Key, queued[0].Kv.Key);
        Assert.NotEqual(held.Key, queued[1].Kv.Key);
        AssertSealed(queued[0].Kv.Value, "");
        AssertSealed(queued[1].Kv.Value, "");
        acquired.EnsureSuccess();
        Assert.Equal(["got-it"], acquired.StdOutLines);
    }

    [Fact]
    public async Task A_lock_owner_key_outside_the_encrypted_prefixes_is_stored_unsealed_and_a_clientv3_mutex_queues_behind_it()
    {
        var name = ShieldedEtcd.NewPrefix("locks-outside") + "mutex";
        var lease = await GrantAsync(etcd.ScopedChannel);
        var locks = new LockClient(etcd.ScopedChannel);
        var kv = new KV.KVClient(etcd.ScopedChannel);
        await using var watch = await WatchStream.OpenAsync(etcd.ScopedChannel, new WatchCreateRequest
        {
            Key = Utf8(name + "/"),
            RangeEnd = Utf8(name + "0"),
        });

        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease });
        var events = await watch.ReadEventsAsync(1);
        var range = await kv.RangeAsync(new RangeRequest { Key = held.Key });
        var stored = await etcd.StoredAsync(held.Key.ToStringUtf8());

        // A clientv3 mutex queues behind the Lock RPC holder and gets the lock once it is released.
        var contending = etcd.Scoped.Etcdctl(etcd.Pki).RunAsync(["lock", name, "echo", "got-it"], standardInput: null, timeout: TimeSpan.FromSeconds(30));
        var queued = await watch.ReadEventsAsync(1);
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });
        var acquired = await contending;

        Assert.Equal(held.Key, events[0].Kv.Key);
        Assert.True(events[0].Kv.Value.IsEmpty);
        Assert.Equal(ByteString.Empty, range.Kvs.Single().Value);
        // Not an envelope: outside --encrypt-prefix the proxy writes the owner key as etcd's lock server would.
        Assert.Equal(ByteString.Empty, stored);
        Assert.Equal(ByteString.Empty, queued[^1].Kv.Value);
        acquired.EnsureSuccess();
        Assert.Equal(["got-it"], acquired.StdOutLines);
    }

    private static async Task<long> GrantAsync(GrpcChannel channel) =>
        (await new Lease.LeaseClient(channel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;

    /// <summary>The default proxy (every key encrypted) and a second one on the same etcd that encrypts only <c>/secret/</c>.</summary>
    public sealed class Proxies : ShieldedEtcd
    {
        private GrpcChannel? _scopedChannel;

        internal ShieldServer Scoped { get; private set; } = null!;

        internal GrpcChannel ScopedChannel => _scopedChannel ?? throw new InvalidOperationException("The fixture has not started.");

        protected override async Task OnStartedAsync()
        {
            Scoped = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--encrypt-prefix", "/secret/"]);
            _scopedChannel = GrpcChannels.ToProxy(Scoped, Pki);
        }

        protected override async ValueTask OnStoppingAsync()
        {
            _scopedChannel?.Dispose();
            if (Scoped is not null)
            {
                await Scoped.DisposeAsync();
            }
        }
    }
}
