using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.ReadCache;
using EtcdShield.Tests.Relay;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.ReadCache;

/// <summary>The cache sits below the gate: a cached answer is still decided per call, for the caller asking now.</summary>
public sealed class CachedAuthorizationTests
{
    [Fact]
    public async Task A_caller_no_longer_allowed_the_key_is_denied_although_its_answer_is_cached()
    {
        SerializableReadCache? cache = null;
        using var bed = new RelayBed(upstream: etcd =>
            (cache = new SerializableReadCache(etcd, 1 << 20, new ReadCacheMetrics(TestMeterFactory.Create()), new FakeTimeProvider(), TimeSpan.FromMinutes(1), NullLogger.Instance)).Wrap(etcd));
        using var owned = cache!;
        var watch = bed.Etcd.NextStream("Watch/Watch");
        bed.Etcd.Store.Put("/app/x", "secret");
        var read = new RangeRequest { Key = ByteString.CopyFromUtf8("/app/x"), Serializable = true };

        await RangeAsync(bed, read);
        await watch.Requests.ReadAsync();
        watch.Respond(new WatchResponse { Created = true, Header = new ResponseHeader { Revision = bed.Etcd.Store.Revision } });
        await cache!.Entries!.Reached(bed.Etcd.Store.Revision);
        await RangeAsync(bed, read);
        var sent = bed.Etcd.SentTo<RangeRequest>("KV/Range").Count;
        Assert.Equal("secret", Assert.Single((await RangeAsync(bed, read)).Kvs).Value.ToStringUtf8());
        Assert.Equal(sent, bed.Etcd.SentTo<RangeRequest>("KV/Range").Count);

        bed.ChangePolicy("{ prefix: /other/, permission: readwrite }");

        var denied = await Assert.ThrowsAnyAsync<RpcException>(() => RangeAsync(bed, read));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        Assert.Equal(1, cache.Entries.Count);
    }

    private static async Task<RangeResponse> RangeAsync(RelayBed bed, RangeRequest request) =>
        (RangeResponse)await bed.Relay.UnaryAsync(RelayBed.Method("KV/Range"), request.Clone(), bed.Context());
}
