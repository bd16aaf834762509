using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using EtcdLock = EtcdShield.Protocol.V3lockpb.Lock;
using ServiceDescriptor = Google.Protobuf.Reflection.ServiceDescriptor;

namespace EtcdShield.Relay;

/// <summary>
/// The etcd v3 gRPC surface the proxy relays. Only these methods are registered; anything else is
/// answered UNIMPLEMENTED by the server and never reaches etcd.
/// </summary>
internal static class EtcdApi
{
    public static readonly IReadOnlyList<ServiceDescriptor> Services =
    [
        KV.Descriptor,
        Watch.Descriptor,
        Lease.Descriptor,
        Cluster.Descriptor,
        Maintenance.Descriptor,
        Auth.Descriptor,
        EtcdLock.Descriptor,
        Election.Descriptor,
    ];

    public static IEnumerable<RelayedMethod> Methods() =>
        Services.SelectMany(s => s.Methods).Select(m => new RelayedMethod(m));
}
