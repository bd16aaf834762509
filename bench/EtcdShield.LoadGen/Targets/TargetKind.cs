namespace EtcdShield.LoadGen.Targets;

/// <summary>What the load is sent to. Every target serves etcd's v3 gRPC API on loopback from a fresh etcd.</summary>
internal enum TargetKind
{
    /// <summary>etcd with plaintext clients: the ceiling, no TLS at all.</summary>
    Etcd,

    /// <summary>etcd with client mutual TLS: the secure baseline every ratio is taken against.</summary>
    EtcdMtls,

    /// <summary>etcd's own grpc-proxy terminating the same client mTLS in front of plaintext etcd: the peer.</summary>
    GrpcProxy,

    /// <summary>EtcdShield with --no-encryption in front of plaintext etcd: the relay's cost alone.</summary>
    ShieldPlain,

    /// <summary>EtcdShield encrypting values (SoftHSM2 KEK, or a key file where the build has no PKCS#11 yet).</summary>
    ShieldEncrypted,
}

internal static class TargetKinds
{
    public static string Label(this TargetKind kind) => kind switch
    {
        TargetKind.Etcd => "etcd (plaintext)",
        TargetKind.EtcdMtls => "direct mTLS etcd",
        TargetKind.GrpcProxy => "etcd grpc-proxy",
        TargetKind.ShieldPlain => "EtcdShield --no-encryption",
        TargetKind.ShieldEncrypted => "EtcdShield encrypting",
        _ => kind.ToString(),
    };

    /// <summary>Short stable name used in JSON, file names and the command line.</summary>
    public static string Id(this TargetKind kind) => kind switch
    {
        TargetKind.Etcd => "etcd",
        TargetKind.EtcdMtls => "etcd-mtls",
        TargetKind.GrpcProxy => "grpc-proxy",
        TargetKind.ShieldPlain => "shield-plain",
        TargetKind.ShieldEncrypted => "shield-encrypted",
        _ => kind.ToString(),
    };

    public static TargetKind Parse(string id)
    {
        foreach (var kind in Enum.GetValues<TargetKind>())
        {
            if (kind.Id() == id)
            {
                return kind;
            }
        }

        throw new ArgumentException($"unknown target '{id}'; known: {string.Join(", ", Enum.GetValues<TargetKind>().Select(k => k.Id()))}");
    }

    /// <summary>Whether a proxy process sits between the client and etcd.</summary>
    public static bool HasProxy(this TargetKind kind) => kind is TargetKind.GrpcProxy or TargetKind.ShieldPlain or TargetKind.ShieldEncrypted;
}
