namespace EtcdShield.LoadGen.Load;

/// <summary>How hard and how long each workload runs. <paramref name="WatchPutsPerSecond"/> is events per second per watcher (--watch-rate).</summary>
internal sealed record LoadSettings(
    int Clients,
    int Connections,
    TimeSpan Warmup,
    TimeSpan Duration,
    int Keys,
    int Watchers,
    double WatchPutsPerSecond)
{
    /// <summary>No single call may take longer than this; a stuck target fails a run instead of hanging it.</summary>
    public static TimeSpan CallDeadline { get; } = TimeSpan.FromSeconds(15);
}
