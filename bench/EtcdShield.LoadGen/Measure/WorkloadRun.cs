using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Measure;

/// <summary>What one workload measured on one target in one round.</summary>
internal sealed class WorkloadRun
{
    public required int Round { get; init; }

    public required BenchTarget Target { get; init; }

    public required Workload Workload { get; init; }

    /// <summary>Completed operations (for watch: events received) in the measured window.</summary>
    public long Operations { get; set; }

    public long Errors { get; set; }

    public Dictionary<string, long> ErrorsByCode { get; } = new(StringComparer.Ordinal);

    public double Seconds { get; set; }

    /// <summary>Per-operation latency; for watch, put-to-event latency.</summary>
    public LatencyHistogram Latency { get; } = new();

    public ResourceUse Resources { get; set; } = ResourceUse.None;

    /// <summary>Watch only: puts issued in the window, and events every watcher should therefore have received.</summary>
    public long? Puts { get; set; }

    public long? ExpectedEvents { get; set; }

    public int? Watchers { get; set; }

    /// <summary>Watch only: seconds from the first watch stream opened to the last watch created.</summary>
    public double? WatchOpenSeconds { get; set; }

    /// <summary>Watch only: the proxy's resident set just before the watchers were opened (after the closed-loop workloads).</summary>
    public long? ProxyResidentBeforeWatchers { get; set; }

    /// <summary>Txn only: compares that held (put) and that did not (get).</summary>
    public long? TxnSucceeded { get; set; }

    public long? TxnFailed { get; set; }

    /// <summary>Why this run is void (a process died, the load could not connect).</summary>
    public string? Failure { get; set; }

    public double OperationsPerSecond => Seconds > 0 ? Operations / Seconds : 0;
}

/// <summary>
/// CPU seconds and memory of the target's processes and of the load generator over a measured window: peak is VmHWM
/// since the workload's reset, steady the median VmRSS (and of the proxy its RssAnon part: heap, stacks, JIT'd code,
/// without mapped images) read every half second inside the window.
/// </summary>
internal sealed record ResourceUse(
    double? ProxyCpuSeconds,
    double EtcdCpuSeconds,
    double LoadGenCpuSeconds,
    long? ProxyPeakBytes,
    long? EtcdPeakBytes,
    long? ProxySteadyBytes = null,
    long? EtcdSteadyBytes = null,
    double WindowSeconds = 0,
    long? ProxySteadyAnonymousBytes = null)
{
    public static ResourceUse None { get; } = new(null, 0, 0, null, null);

    /// <summary>Cores the load generator kept busy on average: near one of two, it (not the target) may be the bottleneck.</summary>
    public double? LoadGenCores => WindowSeconds > 0 ? LoadGenCpuSeconds / WindowSeconds : null;
}
