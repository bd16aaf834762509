using System.IO.Compression;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Compression;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A tenant sends a gzip-compressed gRPC message that is small on the wire and enormous once inflated, to make
/// the proxy allocate far beyond etcd's request limit. It is refused as too large, nothing reaches etcd, and the
/// proxy keeps serving.
/// </summary>
public sealed class GzipBombTests(KnownAttacksFixture fixture) : IClassFixture<KnownAttacksFixture>
{
    [Fact]
    public async Task A_put_that_inflates_to_64_mib_is_refused_as_too_large_and_never_reaches_etcd()
    {
        var bomb = new PutRequest { Key = ByteString.CopyFromUtf8("/tenant/bomb"), Value = ByteString.CopyFrom(new byte[64 << 20]) };
        using var channel = GrpcChannel.ForAddress(fixture.Shield.ClientUrl, new GrpcChannelOptions
        {
            HttpHandler = Relay.Support.GrpcClients.Handler(fixture.Pki, fixture.Tenant),
            DisposeHttpClient = true,
            CompressionProviders = [new GzipCompressionProvider(CompressionLevel.SmallestSize)],
            MaxSendMessageSize = null,
        });
        var kv = new KV.KVClient(channel);
        var compressed = new Metadata { { "grpc-internal-encoding-request", "gzip" } };

        var refusal = await Assert.ThrowsAsync<RpcException>(() => kv.PutAsync(bomb, compressed).ResponseAsync);

        Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
        using var direct = fixture.EtcdChannel();
        var stored = await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = bomb.Key, CountOnly = true });
        Assert.Equal(0, stored.Count);
        var after = await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("/tenant/after-bomb"), Value = ByteString.CopyFromUtf8("small") }, compressed);
        Assert.True(after.Header.Revision > 0);
    }
}
