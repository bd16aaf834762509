namespace EtcdShield.LoadGen.Load;

/// <summary>
/// The start-up scenario's phases. <paramref name="Idle"/>: how long a freshly started target sits without load
/// before its idle resident set is read. <paramref name="Load"/>: closed-loop load from the first answer on, the
/// first <see cref="ColdSeconds"/> of it compared with the last <paramref name="Steady"/> (the steady state: long
/// enough after the start that a JIT-ing proxy's tiered compilation is done, measured 35-60 s on this machine).
/// </summary>
internal sealed record StartupSettings(TimeSpan Idle, TimeSpan Load, TimeSpan Steady, WorkloadKind Workload)
{
    /// <summary>The window: throughput in the first 10 s after start, relative to steady state.</summary>
    public const int ColdSeconds = 10;

    public int LoadSeconds => (int)Math.Round(Load.TotalSeconds);

    public int SteadySeconds => (int)Math.Round(Steady.TotalSeconds);
}
