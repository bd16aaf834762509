using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using static EtcdShield.EndToEnd.Encryption.StoredValue;
using LockClient = EtcdShield.Protocol.V3lockpb.Lock.LockClient;
using LockRequest = EtcdShield.Protocol.V3lockpb.LockRequest;
using UnlockRequest = EtcdShield.Protocol.V3lockpb.UnlockRequest;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// etcd's lock service (v3lockpb) writes the ownership key <c>name/lease-id-in-hex</c> itself, server-side,
/// with an empty value that never passes through the proxy, so it is plaintext under an encrypted prefix.
/// These tests pin down what that means for clients of an encrypting proxy: Lock and Unlock work, but reading
/// the ownership keys through the proxy is refused as "value is not encrypted" (the proxy may not return
/// values it did not seal), and so is a clientv3 mutex (etcdctl lock) that contends with a Lock RPC holder.
/// Keeping lock names outside <c>--encrypt-prefix</c> makes every one of these work.
/// </summary>
public sealed class LockServiceTests(LockServiceTests.Proxies etcd) : IClassFixture<LockServiceTests.Proxies>
{
    [Fact]
    public async Task Lock_and_unlock_work_through_the_encrypting_proxy_and_etcd_stores_an_empty_plaintext_owner_key()
    {
        var name = ShieldedEtcd.NewPrefix("lock") + "mutex";
        var lease = await GrantAsync(etcd.ProxyChannel);
        var locks = new LockClient(etcd.ProxyChannel);

        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease });
        var stored = await etcd.StoredAsync(held.Key.ToStringUtf8());
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        Assert.StartsWith(name + "/", held.Key.ToStringUtf8(), StringComparison.Ordinal);
        Assert.NotNull(stored);
        Assert.True(stored.IsEmpty);
        Assert.Null(await etcd.StoredAsync(held.Key.ToStringUtf8()));
    }

    [Fact]
    public async Task Reading_a_lock_owner_key_through_the_encrypting_proxy_is_refused_as_not_encrypted()
    {
        var name = ShieldedEtcd.NewPrefix("lock-read") + "mutex";
        var lease = await GrantAsync(etcd.ProxyChannel);
        var locks = new LockClient(etcd.ProxyChannel);
        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease });
        var key = held.Key.ToStringUtf8();

        var range = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.RangeAsync(new RangeRequest { Key = held.Key }).ResponseAsync);
        var keysOnly = await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = held.Key, KeysOnly = true });
        var etcdctl = await etcd.Shield.Etcdctl(etcd.Pki).RunAsync("get", "--prefix", name);
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        AssertDataLoss(range, key);
        Assert.EndsWith("value is not encrypted", range.Status.Detail, StringComparison.Ordinal);
        Assert.Equal([key], keysOnly.Kvs.Select(kv => kv.Key.ToStringUtf8()));
        Assert.False(etcdctl.Succeeded, etcdctl.ToString());
        Assert.Contains("code = DataLoss", etcdctl.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_watcher_on_a_lock_name_through_the_encrypting_proxy_ends_with_data_loss_when_the_lock_is_taken()
    {
        var name = ShieldedEtcd.NewPrefix("lock-watch") + "mutex";
        var lease = await GrantAsync(etcd.ProxyChannel);
        await using var watch = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest
        {
            Key = Utf8(name + "/"),
            RangeEnd = Utf8(name + "0"),
        });
        var locks = new LockClient(etcd.ProxyChannel);

        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease });
        var failure = await watch.ReadUntilFailureAsync();
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        AssertDataLoss(failure, held.Key.ToStringUtf8());
        Assert.Empty(watch.Responses.SelectMany(r => r.Events));
    }

    [Fact]
    public async Task A_clientv3_mutex_through_the_proxy_works_alone_but_fails_while_a_lock_rpc_holds_the_same_name()
    {
        var name = ShieldedEtcd.NewPrefix("lock-mixed") + "mutex";
        var etcdctl = etcd.Shield.Etcdctl(etcd.Pki, commandTimeout: TimeSpan.FromSeconds(5));

        // etcdctl lock is a client-side mutex: its (empty) value goes through the proxy and is sealed.
        var alone = await etcdctl.RunAsync("lock", name, "echo", "held-by-etcdctl");
        var lease = await GrantAsync(etcd.ProxyChannel);
        var locks = new LockClient(etcd.ProxyChannel);
        var held = await locks.LockAsync(new LockRequest { Name = Utf8(name), Lease = lease });
        var contending = await etcdctl.RunAsync("lock", name, "echo", "never-printed");
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });

        alone.EnsureSuccess();
        Assert.Equal(["held-by-etcdctl"], alone.StdOutLines);
        Assert.False(contending.Succeeded, contending.ToString());
        Assert.False(contending.TimedOut, contending.ToString());
        Assert.Contains("code = DataLoss", contending.StdErr, StringComparison.Ordinal);
        Assert.Contains("value is not encrypted", contending.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("never-printed", contending.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lock_names_outside_the_encrypted_prefixes_read_and_watch_normally()
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

        // A clientv3 mutex queues behind the Lock RPC holder and gets the lock once it is released.
        var contending = etcd.Scoped.Etcdctl(etcd.Pki).RunAsync(["lock", name, "echo", "got-it"], standardInput: null, timeout: TimeSpan.FromSeconds(30));
        var queued = await watch.ReadEventsAsync(1);
        await locks.UnlockAsync(new UnlockRequest { Key = held.Key });
        var acquired = await contending;

        Assert.Equal(held.Key, events[0].Kv.Key);
        Assert.True(events[0].Kv.Value.IsEmpty);
        Assert.Equal(ByteString.Empty, range.Kvs.Single().Value);
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
                await KnownRelayErrors.DisposeCheckingErrorsAsync(Scoped);
            }
        }
    }
}
