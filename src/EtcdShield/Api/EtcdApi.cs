using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using Google.Protobuf.Reflection;
using EtcdLock = EtcdShield.Protocol.V3lockpb.Lock;
using ServiceDescriptor = Google.Protobuf.Reflection.ServiceDescriptor;

namespace EtcdShield.Api;

/// <summary>
/// The etcd v3 gRPC surface the proxy serves. Only these methods are registered; anything else is answered
/// UNIMPLEMENTED by the server and never reaches etcd. The lowest folder: the relay registers these methods,
/// the policy names them, the value handlers are checked against them.
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

    /// <summary>Every method of <see cref="Services"/>.</summary>
    public static readonly IReadOnlyList<MethodDescriptor> Methods = Services.SelectMany(s => s.Methods).ToList();

    /// <summary>The short names of <see cref="Methods"/>, as <see cref="NameOf"/> gives them.</summary>
    public static readonly IReadOnlyList<string> ShortNames = Methods.Select(NameOf).ToList();

    /// <summary>The short name used in policies, metrics and logs, e.g. <c>KV/Range</c>.</summary>
    public static string NameOf(MethodDescriptor method) => $"{method.Service.Name}/{method.Name}";
}
