using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Measure;

/// <summary>One gateway operation, closed loop, on one target in one round.</summary>
internal sealed class GatewayRun
{
    public required int Round { get; init; }

    public required TargetKind Target { get; init; }

    public required GatewayOperation Operation { get; init; }

    public required int ValueSize { get; init; }

    /// <summary>Good answers to requests started in the measured window.</summary>
    public long Operations { get; set; }

    public long Errors { get; set; }

    public Dictionary<string, long> ErrorsByCode { get; } = new(StringComparer.Ordinal);

    public double Seconds { get; set; }

    public LatencyHistogram Latency { get; } = new();

    public ResourceUse Resources { get; set; } = ResourceUse.None;

    /// <summary>Why this run is void (the target refused the gateway, a process died).</summary>
    public string? Failure { get; set; }

    /// <summary>Set when the target has no JSON gateway at all (etcd grpc-proxy): not a failure, nothing to measure.</summary>
    public string? NotServed { get; init; }

    public double OperationsPerSecond => Seconds > 0 ? Operations / Seconds : 0;
}
