using EtcdShield.Relay;

namespace EtcdShield.Tests.Relay;

public sealed class RelayedMethodTests
{
    [Fact]
    public void Relays_every_etcd_service_and_only_known_methods()
    {
        var names = RelayedMethod.All().Select(m => m.Method.FullName).ToHashSet();

        Assert.Contains("/etcdserverpb.KV/Range", names);
        Assert.Contains("/etcdserverpb.Watch/Watch", names);
        Assert.Contains("/etcdserverpb.Lease/LeaseKeepAlive", names);
        Assert.Contains("/etcdserverpb.Maintenance/Snapshot", names);
        Assert.Contains("/etcdserverpb.Cluster/MemberList", names);
        Assert.Contains("/etcdserverpb.Auth/Authenticate", names);
        Assert.Contains("/v3lockpb.Lock/Lock", names);
        Assert.Contains("/v3electionpb.Election/Observe", names);
        Assert.DoesNotContain(RelayedMethod.All(), m => m.Method.Type == Grpc.Core.MethodType.ClientStreaming);
    }

    [Fact]
    public void Streaming_shapes_follow_the_etcd_protos()
    {
        var byName = RelayedMethod.All().ToDictionary(m => m.Name);

        Assert.Equal(Grpc.Core.MethodType.DuplexStreaming, byName["Watch/Watch"].Method.Type);
        Assert.Equal(Grpc.Core.MethodType.DuplexStreaming, byName["Lease/LeaseKeepAlive"].Method.Type);
        Assert.Equal(Grpc.Core.MethodType.ServerStreaming, byName["Maintenance/Snapshot"].Method.Type);
        Assert.Equal(Grpc.Core.MethodType.ServerStreaming, byName["Election/Observe"].Method.Type);
        Assert.Equal(Grpc.Core.MethodType.Unary, byName["KV/Txn"].Method.Type);
    }
}
