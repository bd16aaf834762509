using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Measure;

/// <summary>
/// One target started cold, measured from its exec: when it first answered a Range, its resident set at idle, and
/// second by second under load from that first answer on, until the steady state at the end of the load.
/// </summary>
internal sealed class StartupRun
{
    public required int Round { get; init; }

    public required TargetKind Target { get; init; }

    /// <summary>"grpc-proxy", "etcd", "shield-encrypted-jit", "shield-encrypted-published".</summary>
    public required string Variant { get; init; }

    public required string Label { get; init; }

    /// <summary>The exact program and how it was built.</summary>
    public required string HowRun { get; init; }

    public required int ValueSize { get; init; }

    /// <summary>etcd's own exec to its first answered Range (its fresh data directory; the etcd every row starts with).</summary>
    public double? EtcdFirstAnswerMs { get; set; }

    /// <summary>The measured process's exec to its first answered Range, in the idle launch and in the loaded one.</summary>
    public List<double> FirstAnswerMs { get; } = [];

    /// <summary>Exec to the process's own "ready" log line, loaded launch.</summary>
    public double? ReadyLineMs { get; set; }

    /// <summary>Exec to the first 200 of a JSON POST /v3/kv/range, a gateway request being the first request (EtcdShield only).</summary>
    public double? GatewayFirstAnswerMs { get; set; }

    /// <summary>VmRSS after the idle time with no load at all, and VmHWM then.</summary>
    public long? IdleRssBytes { get; set; }

    public long? IdlePeakBytes { get; set; }

    /// <summary>RssAnon at idle: the resident set without mapped images and shared memory.</summary>
    public long? IdleAnonBytes { get; set; }

    /// <summary>RssAnon at the end of each second under load.</summary>
    public long[] AnonPerSecond { get; set; } = [];

    /// <summary>Operations answered in each second after the first answer (completion time).</summary>
    public long[] OpsPerSecond { get; set; } = [];

    /// <summary>The measured process's CPU seconds in each second, sampled from /proc/PID/stat.</summary>
    public double[] CpuPerSecond { get; set; } = [];

    public double[] EtcdCpuPerSecond { get; set; } = [];

    /// <summary>VmRSS at the end of each second.</summary>
    public long[] RssPerSecond { get; set; } = [];

    /// <summary>VmHWM at the end of the load: the largest resident set since exec.</summary>
    public long? LoadPeakBytes { get; set; }

    public long Errors { get; set; }

    public Dictionary<string, long> ErrorsByCode { get; } = new(StringComparer.Ordinal);

    public string? Failure { get; set; }

    public int SteadySeconds { get; set; }

    public double SteadyOpsPerSecond => Steady(OpsPerSecond.Select(o => (double)o)) / SteadySeconds;

    public double? SteadyCpuPerOp => SteadyOps() > 0 ? Steady(CpuPerSecond) / SteadyOps() : null;

    /// <summary>Operations in the first 10 s over 10 s of steady-state throughput: the issue's ≥ 0.8 target.</summary>
    public double? ColdThroughputRatio => SteadyOpsPerSecond > 0 ? Cold(OpsPerSecond.Select(o => (double)o)) / (Load.StartupSettings.ColdSeconds * SteadyOpsPerSecond) : null;

    /// <summary>CPU per answered request in the first 10 s over the steady state's.</summary>
    public double? ColdCpuRatio
    {
        get
        {
            var ops = Cold(OpsPerSecond.Select(o => (double)o));
            return ops > 0 && SteadyCpuPerOp is { } steady && steady > 0 ? Cold(CpuPerSecond) / ops / steady : null;
        }
    }

    /// <summary>Median VmRSS over the steady window.</summary>
    public long? SteadyRssBytes
    {
        get
        {
            var window = RssPerSecond.Skip(RssPerSecond.Length - SteadySeconds).Where(r => r > 0).Order().ToList();
            return window.Count > 0 ? window[window.Count / 2] : null;
        }
    }

    /// <summary>Median RssAnon over the steady window.</summary>
    public long? SteadyAnonBytes
    {
        get
        {
            var window = AnonPerSecond.Skip(AnonPerSecond.Length - SteadySeconds).Where(r => r > 0).Order().ToList();
            return window.Count > 0 ? window[window.Count / 2] : null;
        }
    }

    /// <summary>Throughput of one second over steady.</summary>
    public double? SecondRatio(int second) => SteadyOpsPerSecond > 0 && second < OpsPerSecond.Length ? OpsPerSecond[second] / SteadyOpsPerSecond : null;

    /// <summary>CPU per operation over <paramref name="from"/> .. <paramref name="from"/>+<paramref name="seconds"/>, relative to steady.</summary>
    public double? CpuRatio(int from, int seconds)
    {
        var ops = OpsPerSecond.Skip(from).Take(seconds).Sum();
        return ops > 0 && SteadyCpuPerOp is { } steady && steady > 0 ? CpuPerSecond.Skip(from).Take(seconds).Sum() / ops / steady : null;
    }

    /// <summary>
    /// The first 5-s bucket from which CPU per operation stays within 1.2× steady up to the steady window: how long
    /// the process runs hot after start (the issue measured 35-60 s before this work).
    /// </summary>
    public int? SettledAfterSeconds
    {
        get
        {
            var end = OpsPerSecond.Length - SteadySeconds;
            int? settled = null;
            for (var from = 0; from + 5 <= end; from += 5)
            {
                if (CpuRatio(from, 5) is { } r && r <= 1.2)
                {
                    settled ??= from;
                }
                else
                {
                    settled = null;
                }
            }

            return settled ?? (end >= 5 ? null : 0);
        }
    }

    private double SteadyOps() => Steady(OpsPerSecond.Select(o => (double)o));

    private double Steady(IEnumerable<double> perSecond)
    {
        var all = perSecond.ToList();
        return all.Skip(all.Count - SteadySeconds).Sum();
    }

    private static double Cold(IEnumerable<double> perSecond) => perSecond.Take(Load.StartupSettings.ColdSeconds).Sum();
}
