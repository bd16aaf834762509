namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// One plain etcd (default flags) for every fixture of the test assembly that only needs keys of its own: started on
/// first use, stopped when the test process exits. Tests isolate by key prefix. A test that stops etcd, needs flags
/// of its own, or looks at the whole server (its keyspace, data files or counters) starts its own
/// <see cref="EtcdProcess"/> instead.
/// </summary>
/// <remarks>xunit 2 has no assembly fixtures; a class or collection fixture would start one etcd per class again.</remarks>
internal static class SharedEtcd
{
    private static readonly Lazy<Task<EtcdProcess>> Instance = new(StartAsync, LazyThreadSafetyMode.ExecutionAndPublication);

    public static Task<EtcdProcess> GetAsync() => Instance.Value;

    /// <summary>A key prefix no other test uses: <c>/name-1a2b3c4d/</c>.</summary>
    public static string NewPrefix(string name) => $"/{name}-{Guid.NewGuid().ToString("N")[..8]}/";

    private static async Task<EtcdProcess> StartAsync()
    {
        var etcd = await EtcdProcess.StartAsync();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => etcd.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return etcd;
    }
}
