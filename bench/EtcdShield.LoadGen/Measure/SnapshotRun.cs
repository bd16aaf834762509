using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Measure;

/// <summary>One Maintenance.Snapshot streamed through one target: how fast, and what it cost each process.</summary>
internal sealed class SnapshotRun
{
    public required int Round { get; init; }

    public required TargetKind Target { get; init; }

    /// <summary>1 for the first snapshot after the target started (cold: its code path not yet compiled), then 2, 3, …</summary>
    public required int Sequence { get; init; }

    public bool Cold => Sequence == 1;

    /// <summary>etcd's db size from Status just before the snapshot.</summary>
    public long DatabaseBytes { get; set; }

    /// <summary>Blob bytes received: the database plus etcd's trailing 32-byte SHA-256.</summary>
    public long Bytes { get; set; }

    public long Messages { get; set; }

    /// <summary>From sending the request to the first message.</summary>
    public double FirstByteSeconds { get; set; }

    /// <summary>From sending the request to the end of the stream.</summary>
    public double Seconds { get; set; }

    public ResourceUse Resources { get; set; } = ResourceUse.None;

    public string? Failure { get; set; }

    /// <summary>Megabytes (10⁶ bytes) of database per second.</summary>
    public double MegabytesPerSecond => Seconds > 0 ? DatabaseBytes / Seconds / 1e6 : 0;
}

/// <summary>How the snapshot scenario's database was filled, once per run.</summary>
internal sealed record SnapshotFill(long DatabaseBytes, long Puts, int ValueBytes, int Concurrency, double Seconds, double? EtcdPeakMiB);
