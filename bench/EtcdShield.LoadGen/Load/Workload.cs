namespace EtcdShield.LoadGen.Load;

/// <summary>The operations the benchmark knows.</summary>
internal enum WorkloadKind
{
    Put,
    RangeLinearizable,
    RangeSerializable,
    TxnCas,
    Mixed,
    Watch,

    /// <summary>Watch with nothing to share: each watcher on a key of its own, the writer cycling over the keys.</summary>
    WatchKeys,

    // Hostile inputs: the largest request of each shape the proxy walks value by value (see HostileOperations).
    TxnValueCompares,
    TxnPuts,
    RangeByValue,
}

/// <summary>One measured cell: what is done, with which value size.</summary>
internal sealed record Workload(WorkloadKind Kind, int ValueSize)
{
    public string Id => $"{Kind.Id()}-{SizeLabel(ValueSize)}";

    public static string SizeLabel(int bytes) => bytes % 1024 == 0 ? $"{bytes / 1024}KiB" : $"{bytes}B";
}

internal static class WorkloadKinds
{
    public static string Id(this WorkloadKind kind) => kind switch
    {
        WorkloadKind.Put => "put",
        WorkloadKind.RangeLinearizable => "range-lin",
        WorkloadKind.RangeSerializable => "range-ser",
        WorkloadKind.TxnCas => "txn-cas",
        WorkloadKind.Mixed => "mixed",
        WorkloadKind.Watch => "watch",
        WorkloadKind.WatchKeys => "watch-keys",
        WorkloadKind.TxnValueCompares => "txn-compares",
        WorkloadKind.TxnPuts => "txn-puts",
        WorkloadKind.RangeByValue => "range-by-value",
        _ => kind.ToString(),
    };

    /// <summary>The watch workloads: watchers and a writer at a fixed rate, not a closed loop; run once per target.</summary>
    public static bool IsWatch(this WorkloadKind kind) => kind is WorkloadKind.Watch or WorkloadKind.WatchKeys;

    /// <summary>What a run does when --workloads is not given: everything but watch-keys, which has its own command.</summary>
    public static IReadOnlyList<WorkloadKind> Default { get; } = [.. Enum.GetValues<WorkloadKind>().Where(k => k != WorkloadKind.WatchKeys)];

    /// <summary>The hostile-input rows: each is held to at most 2× the cost of a plain relay of the same bytes.</summary>
    public static bool IsHostile(this WorkloadKind kind) => kind is WorkloadKind.TxnValueCompares or WorkloadKind.TxnPuts or WorkloadKind.RangeByValue;

    public static string Describe(this WorkloadKind kind) => kind switch
    {
        WorkloadKind.Put => "put to a random key",
        WorkloadKind.RangeLinearizable => "linearizable get of a random key",
        WorkloadKind.RangeSerializable => "serializable get of a random key",
        WorkloadKind.TxnCas => "txn: if mod_revision(key) == known then put else get (Kubernetes GuaranteedUpdate)",
        WorkloadKind.Mixed => "90 % linearizable get / 10 % put, random keys",
        WorkloadKind.Watch => "N watchers on one prefix, puts at a fixed rate; events/s and put-to-event latency",
        WorkloadKind.WatchKeys => "N watchers each on a key of its own (nothing to share), the writer cycling over the N keys; events/s and put-to-event latency",
        WorkloadKind.TxnValueCompares => $"hostile: txn of {HostileOperations.GuardedCompares} value compares on distinct keys and as many keys-only gets (the most etcd takes with the proxy's guards)",
        WorkloadKind.TxnPuts => $"hostile: txn of {HostileOperations.MaxTxnOps} puts (etcd's --max-txn-ops), every value sealed",
        WorkloadKind.RangeByValue => $"hostile: get of {HostileOperations.SortedKeys} keys sorted by value (decrypted and sorted in the proxy)",
        _ => kind.ToString(),
    };

    public static WorkloadKind Parse(string id)
    {
        foreach (var kind in Enum.GetValues<WorkloadKind>())
        {
            if (kind.Id() == id)
            {
                return kind;
            }
        }

        throw new ArgumentException($"unknown workload '{id}'; known: {string.Join(", ", Enum.GetValues<WorkloadKind>().Select(k => k.Id()))}");
    }
}
