using EtcdShield.LoadGen.Load;
using EtcdShield.LoadGen.Measure;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Report;

/// <summary>Everything one benchmark run produced, as the three writers (Markdown, JSON, SVG) need it.</summary>
internal sealed class BenchReport
{
    public required string Command { get; init; }

    public required string Mode { get; init; }

    public required DateTimeOffset Started { get; init; }

    public required DateTimeOffset Finished { get; init; }

    public required MachineInfo Machine { get; init; }

    public required string LoadAverageAtEnd { get; init; }

    public required LoadSettings Settings { get; init; }

    public required int Rounds { get; init; }

    public required TimeSpan TargetWarmup { get; init; }

    public required TimeSpan MinTargetWarmup { get; init; }

    public required IReadOnlyList<(int Round, BenchTarget Target, TargetWarmUp WarmUp)> WarmUps { get; init; }

    /// <summary>The kinds in --targets, each once (the snapshot, keep-alive, gateway and startup scenarios').</summary>
    public required IReadOnlyList<TargetKind> Targets { get; init; }

    /// <summary>The unary workloads' rows, --shield-variant rows included.</summary>
    public required IReadOnlyList<BenchTarget> UnaryTargets { get; init; }

    public IReadOnlyList<ShieldVariant> ShieldVariants { get; init; } = [];

    /// <summary>--shield-args: flags every EtcdShield start got.</summary>
    public IReadOnlyList<string> ShieldArguments { get; init; } = [];

    public required string KeyProvider { get; init; }

    public required string KeyProviderDetail { get; init; }

    public required string DataRoot { get; init; }

    public required IReadOnlyList<WorkloadRun> Runs { get; init; }

    public required IReadOnlyList<Summary> Summaries { get; init; }

    public required IReadOnlyList<GoalCheck> Goals { get; init; }

    public MicrobenchResults? Microbench { get; init; }

    public required IReadOnlyList<Scenario> Scenarios { get; init; }

    public required SnapshotSettings SnapshotSettings { get; init; }

    public required KeepAliveSettings KeepAliveSettings { get; init; }

    /// <summary>How the snapshot database was filled; null when the scenario did not run or its etcd failed first.</summary>
    public SnapshotFill? SnapshotFill { get; init; }

    /// <summary>Why the snapshot scenario could not run at all (no room for its database, its etcd did not start).</summary>
    public string? SnapshotFailure { get; init; }

    public IReadOnlyList<SnapshotRun> Snapshots { get; init; } = [];

    public IReadOnlyList<SnapshotSummary> SnapshotSummaries { get; init; } = [];

    public IReadOnlyList<KeepAliveRun> KeepAlives { get; init; } = [];

    public IReadOnlyList<KeepAliveSummary> KeepAliveSummaries { get; init; } = [];

    public IReadOnlyList<GatewayRun> GatewayRuns { get; init; } = [];

    public IReadOnlyList<GatewaySummary> GatewaySummaries { get; init; } = [];

    public IReadOnlyList<(int Round, TargetKind Target, TargetWarmUp WarmUp)> GatewayWarmUps { get; init; } = [];

    /// <summary>Workloads in the order they ran, for tables and the chart.</summary>
    public IEnumerable<Workload> Workloads => Summaries.Select(s => s.Workload).Distinct();

    public StartupSettings? StartupSettings { get; init; }

    public IReadOnlyList<StartupRun> StartupRuns { get; init; } = [];

    /// <summary>How each EtcdShield build of the start-up scenario ran.</summary>
    public IReadOnlyList<string> ShieldBuilds { get; init; } = [];

    public IReadOnlyDictionary<string, string> ShieldEnvironment { get; init; } = new Dictionary<string, string>();
}
