using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3lockpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// How single calls are handled over a raw gRPC client: a unary deadline reaches etcd, methods outside the
/// etcd v3 API are refused as UNIMPLEMENTED by the proxy itself, and keys written by etcd's own Lock API read
/// back as etcd shows them.
/// </summary>
public sealed class CallHandlingTests(CallHandlingTests.Fixture fixture) : IClassFixture<CallHandlingTests.Fixture>, IDisposable
{
    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(bytes => bytes, bytes => bytes);

    private readonly GrpcChannel channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki);

    public sealed class Fixture : ShieldFixture;

    [Fact]
    public async Task A_unary_deadline_is_honoured_and_ends_the_call_in_etcd()
    {
        var leases = new Lease.LeaseClient(channel);
        var locks = new Protocol.V3lockpb.Lock.LockClient(channel);
        var holder = await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        var waiter = await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        var held = await locks.LockAsync(new LockRequest { Name = Bytes("deadline/lock"), Lease = holder.ID });

        // Blocks until the lock is free, which it never is here.
        var waiting = await Assert.ThrowsAsync<RpcException>(() => locks.LockAsync(
            new LockRequest { Name = Bytes("deadline/lock"), Lease = waiter.ID },
            deadline: DateTime.UtcNow.AddSeconds(1)).ResponseAsync);

        // The proxy waits on etcd with the client's deadline, so its timer fires at the same instant as the client's.
        // Whichever is first decides what the client hears: DEADLINE_EXCEEDED from its own timer or from the proxy, or,
        // as against etcd directly, etcd's Lock API's UNKNOWN "context deadline exceeded".
        Assert.True(
            waiting.StatusCode == StatusCode.DeadlineExceeded || (waiting.StatusCode == StatusCode.Unknown && waiting.Status.Detail == "context deadline exceeded"),
            waiting.ToString());

        // The deadline ended the wait: the waiter's key was withdrawn, leaving only the holder's (read from etcd directly).
        await Eventually.HoldsAsync(
            async () => (await fixture.EtcdDirectly.RunAsync("get", "deadline/lock/", "--prefix", "--keys-only")).EnsureSuccess().StdOutLines.Where(l => l.Length > 0).ToList(),
            keys => keys.SequenceEqual([held.Key.ToStringUtf8()]),
            TimeSpan.FromSeconds(10));
        await leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = holder.ID });
        await leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = waiter.ID });
    }

    [Theory]
    [InlineData("etcdserverpb.KV", "Bogus")]
    [InlineData("example.Unknown", "Call")]
    [InlineData("v3lockpb.Lock", "Bogus")]
    public async Task A_method_outside_the_relayed_etcd_api_is_unimplemented(string service, string name)
    {
        var method = new Method<byte[], byte[]>(MethodType.Unary, service, name, Raw, Raw);

        var refused = await Assert.ThrowsAsync<RpcException>(() => channel.CreateCallInvoker().AsyncUnaryCall(method, null, default, []).ResponseAsync);

        // Answered by the proxy itself: etcd (grpc-go) words it "unknown method Bogus for service etcdserverpb.KV".
        Assert.Equal(StatusCode.Unimplemented, refused.StatusCode);
        Assert.DoesNotContain("unknown", refused.Status.Detail, StringComparison.Ordinal);
    }

    public void Dispose() => channel.Dispose();

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);
}
