namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>How to start one etcd member. The defaults give a single-member, plain-HTTP cluster on free ports.</summary>
internal sealed record EtcdOptions
{
    public string Name { get; init; } = "etcd0";

    /// <summary>Serve clients over TLS (an https:// client URL); null serves plain HTTP.</summary>
    public EtcdClientTls? ClientTls { get; init; }

    /// <summary>
    /// Serve clients on a unix socket instead of TCP: etcd's own <c>unix://NAME:PORT</c> (or <c>unixs://</c> with
    /// <see cref="ClientTls"/>), the socket file <c>NAME:PORT</c> in etcd's working directory, and no TCP client
    /// listener at all (etcd 3.4 refuses <c>unix:///abs/path</c>).
    /// </summary>
    public bool ClientUnixSocket { get; init; }

    /// <summary>Appended after the generated flags, e.g. <c>--auto-compaction-retention=1</c>.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>Fixed ports, needed when the member's URLs must be known before it starts (clusters).
    /// Null picks a free port and lets a single member retry with new ports if it loses a bind race.</summary>
    public int? ClientPort { get; init; }

    public int? PeerPort { get; init; }

    /// <summary>The <c>--initial-cluster</c> value (<c>name=peerUrl,...</c>); null means just this member.</summary>
    public string? InitialCluster { get; init; }

    public string InitialClusterState { get; init; } = "new";

    /// <summary>Null generates a unique token, so members of unrelated test clusters can never join each other.</summary>
    public string? InitialClusterToken { get; init; }

    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>Client-facing TLS for etcd. With <paramref name="ClientCertAuth"/> etcd requires a client
/// certificate signed by <paramref name="TrustedCaFile"/>.</summary>
internal sealed record EtcdClientTls(string CertFile, string KeyFile, string TrustedCaFile, bool ClientCertAuth = true)
{
    public static EtcdClientTls From(TestPki pki, bool clientCertAuth = true) =>
        new(pki.ServerCert.CertFile, pki.ServerCert.KeyFile, pki.CaFile, clientCertAuth);
}
