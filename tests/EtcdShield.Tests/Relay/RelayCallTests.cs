using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Tests.Relay;

/// <summary>What a relay call carries to etcd from the client's call.</summary>
public sealed class RelayCallTests
{
    [Fact]
    public async Task A_forwarded_call_carries_the_clients_application_metadata_but_not_its_transport_headers()
    {
        var etcd = new InMemoryEtcd();
        var client = new TestServerCallContext(new Metadata { { "token", "secret-token" }, { "user-agent", "grpc-go" }, { "hasleader", "true" } });

        await etcd.CallFor("KV/Range", client).ForwardUnaryAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/a") });

        var sent = Assert.Single(etcd.Requests);
        Assert.Equal("KV/Range", sent.Method);
        Assert.Equal([("token", "secret-token"), ("hasleader", "true")], sent.Headers!.Select(h => (h.Key, h.Value)));
    }

    [Fact]
    public async Task A_call_whose_token_fired_is_answered_cancelled_without_reaching_the_store()
    {
        var etcd = new InMemoryEtcd();
        using var shutdown = new CancellationTokenSource();
        await shutdown.CancelAsync();

        var failure = await Assert.ThrowsAsync<RpcException>(() =>
            etcd.CallFor("KV/Put", cancellationToken: shutdown.Token).ForwardUnaryAsync(new PutRequest { Key = ByteString.CopyFromUtf8("/a"), Value = ByteString.CopyFromUtf8("1") }));

        Assert.Equal(StatusCode.Cancelled, failure.StatusCode);
        Assert.Null(etcd.Store.Get("/a"));
    }
}
