using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Measure;

/// <summary>Leases kept alive over a number of LeaseKeepAlive streams through one target, at a fixed rate.</summary>
internal sealed class KeepAliveRun
{
    public required int Round { get; init; }

    public required TargetKind Target { get; init; }

    public required int Streams { get; init; }

    public required int Leases { get; init; }

    /// <summary>The rate asked for, over all streams.</summary>
    public required int TargetPerSecond { get; init; }

    /// <summary>Keep-alive requests sent in the measured window.</summary>
    public long Sent { get; set; }

    /// <summary>Answers to requests sent in the measured window, with a positive TTL.</summary>
    public long Answered { get; set; }

    public long Errors { get; set; }

    public Dictionary<string, long> ErrorsByCode { get; } = new(StringComparer.Ordinal);

    public double Seconds { get; set; }

    /// <summary>Request-to-answer latency (answers on a stream come in request order).</summary>
    public LatencyHistogram Latency { get; } = new();

    public ResourceUse Resources { get; set; } = ResourceUse.None;

    public string? Failure { get; set; }

    public double AnsweredPerSecond => Seconds > 0 ? Answered / Seconds : 0;

    /// <summary>User+system CPU microseconds per answered keep-alive; null when the process is not measured.</summary>
    public double? MicrosecondsPerMessage(double? cpuSeconds) => cpuSeconds is { } c && Answered > 0 ? c / Answered * 1e6 : null;
}
