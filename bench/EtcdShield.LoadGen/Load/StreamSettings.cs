namespace EtcdShield.LoadGen.Load;

/// <summary>
/// The snapshot scenario: one etcd filled once per run to <paramref name="DatabaseBytes"/>, then each target's first
/// snapshot after it starts (cold) and <paramref name="WarmSnapshots"/> more (warm).
/// </summary>
internal sealed record SnapshotSettings(long DatabaseBytes, int WarmSnapshots)
{
    /// <summary>1 GiB, the size; big enough that the stream, not its setup, is what is timed.</summary>
    public const long DefaultBytes = 1L << 30;

    /// <summary>etcd's --max-request-bytes default is 1.5 MiB; values just under it fill the database in few puts.</summary>
    public const int FillValueBytes = (3 << 19) - 4096;

    /// <summary>
    /// The largest database the run fills: the launcher's --quota-backend-bytes is 8 GiB, and the fill must stay
    /// under it with room for bbolt's page overhead.
    /// </summary>
    public const long MaxBytes = 7L << 30;
}

/// <summary>
/// The keep-alive scenario: <paramref name="Leases"/> leases kept alive at <paramref name="MessagesPerSecond"/> in
/// total over each stream count of <paramref name="StreamCounts"/>, each for a warm-up and a measured window, after
/// <paramref name="TargetWarmup"/> of the same load unmeasured once per target.
/// </summary>
internal sealed record KeepAliveSettings(
    int Leases,
    int MessagesPerSecond,
    IReadOnlyList<int> StreamCounts,
    TimeSpan TargetWarmup,
    TimeSpan Warmup,
    TimeSpan Duration)
{
    /// <summary>
    /// Short, for etcd grpc-proxy's sake: it does not relay keep-alives one for one but renews each lease upstream
    /// every TTL/3 through its own clientv3 lessor and answers the requests waiting on that lease from each renewal.
    /// With a long TTL its answers would come minutes late; with 6 s every request is answered within about 2 s (the
    /// row's drain is 3 s). Each lease is still renewed several times a second here, so none expires unless a target
    /// stalls for seconds, which then shows as TTL errors.
    /// </summary>
    public const long LeaseTtlSeconds = 6;
}
