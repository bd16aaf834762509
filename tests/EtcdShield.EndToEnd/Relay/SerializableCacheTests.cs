using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// The serializable read cache against real etcd: three proxies sealing with one key (a cached one, a second one
/// that plays another writer, one with the cache off), and a tenant allowed only part of the keys.
/// </summary>
public sealed class SerializableCacheTests(SerializableCacheTests.Fixture fixture) : IClassFixture<SerializableCacheTests.Fixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_value_written_by_another_writer_becomes_visible_to_serializable_reads_through_the_proxy()
    {
        var key = fixture.Prefix + "other-writer";
        await Kv(fixture.OtherWriter).PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes("one") });
        using var hits = fixture.Cached.Collect<long>("EtcdShield.ReadCache", "etcdshield.read_cache.hits");
        await CachedAsync(fixture.Cached, hits, key, "one");

        await Kv(fixture.OtherWriter).PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes("two") });

        await Eventually.HoldsAsync(() => ReadAsync(fixture.Cached, key), value => value == "two", Patience);
    }

    [Fact]
    public async Task A_write_through_the_proxy_is_visible_to_the_next_serializable_read_at_once()
    {
        var key = fixture.Prefix + "own-write";
        var kv = Kv(fixture.Cached);
        await kv.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes("0") });
        using var hits = fixture.Cached.Collect<long>("EtcdShield.ReadCache", "etcdshield.read_cache.hits");
        await CachedAsync(fixture.Cached, hits, key, "0");

        for (var i = 1; i <= 20; i++)
        {
            await kv.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes($"{i}") });
            Assert.Equal($"{i}", await ReadAsync(fixture.Cached, key));
            Assert.Equal($"{i}", await ReadAsync(fixture.Cached, key));
        }

        await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Bytes(key) });
        Assert.Null(await ReadAsync(fixture.Cached, key));
    }

    [Fact]
    public async Task With_size_zero_nothing_is_cached_and_every_read_sees_etcd()
    {
        var key = fixture.Prefix + "uncached";
        using var hits = fixture.Uncached.Collect<long>("EtcdShield.ReadCache", "etcdshield.read_cache.hits");
        using var misses = fixture.Uncached.Collect<long>("EtcdShield.ReadCache", "etcdshield.read_cache.misses");
        for (var i = 0; i < 5; i++)
        {
            await Kv(fixture.OtherWriter).PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes($"{i}") });
            Assert.Equal($"{i}", await ReadAsync(fixture.Uncached, key));
            Assert.Equal($"{i}", await ReadAsync(fixture.Uncached, key));
        }

        Assert.Empty(hits.GetMeasurementSnapshot());
        Assert.Empty(misses.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task A_caller_denied_the_key_is_still_denied_when_its_answer_is_cached()
    {
        var secret = fixture.Prefix + "secret/x";
        var open = fixture.Prefix + "open/x";
        await Kv(fixture.Cached).PutAsync(new PutRequest { Key = Bytes(secret), Value = Bytes("s") });
        await Kv(fixture.Cached).PutAsync(new PutRequest { Key = Bytes(open), Value = Bytes("o") });
        using var hits = fixture.Cached.Collect<long>("EtcdShield.ReadCache", "etcdshield.read_cache.hits");
        await CachedAsync(fixture.Cached, hits, secret, "s");

        using var tenant = GrpcClients.Channel(fixture.Cached.ClientUrl, fixture.Pki, fixture.Tenant);
        var denied = await Assert.ThrowsAsync<RpcException>(async () =>
            await new KV.KVClient(tenant).RangeAsync(new RangeRequest { Key = Bytes(secret), Serializable = true }));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);

        var allowed = await new KV.KVClient(tenant).RangeAsync(new RangeRequest { Key = Bytes(open), Serializable = true });
        Assert.Equal("o", Assert.Single(allowed.Kvs).Value.ToStringUtf8());
    }

    [Fact]
    public async Task A_cache_answering_few_reads_while_etcd_changes_a_lot_closes_its_watch_and_reads_stay_current()
    {
        // A proxy of its own: its watch closes for a while, which the other tests' proxy must not.
        await using var proxy = await ShieldServer.StartAsync(fixture.Pki, fixture.EtcdUrl, flags: fixture.SealingFlags);
        var key = fixture.Prefix + "not-paying";
        await Kv(fixture.OtherWriter).PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes("before") });
        using var hits = proxy.Collect<long>("EtcdShield.ReadCache", "etcdshield.read_cache.hits");
        using var suspensions = proxy.Collect<long>("EtcdShield.ReadCache", "etcdshield.read_cache.suspensions");
        await CachedAsync(proxy, hits, key, "before");

        // Writes of keys nobody reads, through the proxy (so its watch delivers them too): one check's worth.
        var writer = Kv(proxy);
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < ReadCache.KeyspaceWatch.ChangesPerCheck; i = Interlocked.Increment(ref next))
            {
                await writer.PutAsync(new PutRequest { Key = Bytes($"{fixture.Prefix}churn/{i}"), Value = Bytes("x") });
            }
        }));
        await Eventually.HoldsAsync(() => Task.FromResult(suspensions.GetMeasurementSnapshot().Sum(m => m.Value)), count => count >= 1, Patience);

        // Closed, the cache answers nothing: another writer's change is read at once, without waiting for any watch.
        await Kv(fixture.OtherWriter).PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes("after") });
        Assert.Equal("after", await ReadAsync(proxy, key));
        Assert.Equal("after", await ReadAsync(proxy, key));
    }

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);

    private KV.KVClient Kv(ShieldServer proxy) => new(fixture.ChannelTo(proxy));

    private async Task<string?> ReadAsync(ShieldServer proxy, string key) =>
        (await Kv(proxy).RangeAsync(new RangeRequest { Key = Bytes(key), Serializable = true })).Kvs.SingleOrDefault()?.Value.ToStringUtf8();

    /// <summary>Reads until the proxy answers the read from its cache (its watch is up and the answer stored), opened as written.</summary>
    private async Task CachedAsync(ShieldServer proxy, MetricCollector<long> hits, string key, string expected)
    {
        await Eventually.HoldsAsync(
            async () => (Value: await ReadAsync(proxy, key), Hits: hits.GetMeasurementSnapshot().Count),
            seen => seen.Value == expected && seen.Hits > 0,
            Patience);
        Assert.Equal(expected, await ReadAsync(proxy, key));
    }

    public sealed class Fixture : IAsyncLifetime
    {
        private readonly Dictionary<ShieldServer, GrpcChannel> _channels = [];
        private readonly string _directory = Directory.CreateTempSubdirectory("etcdshield-cache-").FullName;
        private ShieldServer? _cached;
        private ShieldServer? _otherWriter;
        private ShieldServer? _uncached;

        public TestPki Pki { get; } = new();

        public string Prefix { get; } = SharedEtcd.NewPrefix("serializable-cache");

        public CertificatePaths Tenant { get; private set; } = null!;

        /// <summary>The flags of every proxy here: one key, so what one seals the others open, and the tenant's policy.</summary>
        public string[] SealingFlags { get; private set; } = [];

        public string EtcdUrl { get; private set; } = "";

        internal ShieldServer Cached => _cached!;

        internal ShieldServer OtherWriter => _otherWriter!;

        internal ShieldServer Uncached => _uncached!;

        internal GrpcChannel ChannelTo(ShieldServer proxy)
        {
            lock (_channels)
            {
                if (!_channels.TryGetValue(proxy, out var channel))
                {
                    _channels[proxy] = channel = GrpcClients.Channel(proxy.ClientUrl, Pki);
                }

                return channel;
            }
        }

        public async Task InitializeAsync()
        {
            var etcd = await SharedEtcd.GetAsync();
            Tenant = Pki.IssueClient("cache-tenant", "cache-tenant");
            var policy = Path.Combine(_directory, "policy.yaml");
            File.WriteAllText(policy, $$"""
                identities:
                  - name: tenant
                    match: { cn: cache-tenant }
                    keys:
                      - { prefix: {{Prefix}}open/, permission: read }
                """);
            SealingFlags = ["--encryption-key-file", ShieldServer.WriteDevelopmentKey(_directory), "--policy-file", policy];
            EtcdUrl = etcd.ClientUrl;
            _cached = await ShieldServer.StartAsync(Pki, EtcdUrl, flags: SealingFlags);
            _otherWriter = await ShieldServer.StartAsync(Pki, EtcdUrl, flags: SealingFlags);
            _uncached = await ShieldServer.StartAsync(Pki, EtcdUrl, flags: [.. SealingFlags, "--serializable-cache-size", "0"]);
        }

        public async Task DisposeAsync()
        {
            foreach (var channel in _channels.Values)
            {
                channel.Dispose();
            }

            foreach (var proxy in new[] { _cached, _otherWriter, _uncached })
            {
                if (proxy is not null)
                {
                    await proxy.DisposeAsync();
                }
            }

            Pki.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }
}
