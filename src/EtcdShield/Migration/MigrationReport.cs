using System.Text;

namespace EtcdShield.Migration;

/// <summary>What a migration run found and changed; printed at the end and used by tests.</summary>
internal sealed class MigrationReport
{
    public required string CurrentKekId { get; init; }

    public long Revision { get; set; }

    public long Scanned { get; set; }

    public long AlreadyCurrent { get; set; }

    public long NotEncrypted { get; set; }

    /// <summary>Values sealed under another KEK that were (or, in a dry run, would be) re-encrypted, by that KEK's id.</summary>
    public Dictionary<string, long> Rewrapped { get; } = new(StringComparer.Ordinal);

    public long PlaintextEncrypted { get; set; }

    /// <summary>Keys a concurrent writer changed first; their new value was already current when re-read.</summary>
    public long OvertakenByWriters { get; set; }

    /// <summary>Keys deleted (or whose lease expired) while the migration ran.</summary>
    public long Vanished { get; set; }

    /// <summary>Keys whose stored value could not be decrypted (named in the log); they still refer to old keys.</summary>
    public List<string> Failed { get; } = [];

    /// <summary>Unencrypted values outside the migration window this run was given; never sealed, since anyone
    /// with write access to etcd can put them there.</summary>
    public List<string> Refused { get; } = [];

    public bool DryRun { get; init; }

    /// <summary>Whether every value is now current: what the exit code reports.</summary>
    public bool Complete => Failed.Count == 0 && Refused.Count == 0;

    public override string ToString()
    {
        var text = new StringBuilder();
        var verb = DryRun ? "would re-encrypt" : "re-encrypted";
        text.AppendLine($"migrate: scanned {Scanned} keys at revision {Revision}; current key-encryption key {CurrentKekId}{(DryRun ? " (dry run: nothing written)" : "")}");
        foreach (var (kek, count) in Rewrapped.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            text.AppendLine($"  {verb} {count} values sealed under {kek}");
        }

        text.AppendLine($"  {(DryRun ? "would encrypt" : "encrypted")} {PlaintextEncrypted} plaintext values");
        text.AppendLine($"  already current: {AlreadyCurrent}");
        text.AppendLine($"  outside the encrypted prefixes: {NotEncrypted}");
        text.AppendLine($"  overtaken by concurrent writers (already current): {OvertakenByWriters}");
        text.AppendLine($"  deleted while migrating: {Vanished}");
        AppendKeys(text, $"refused (plaintext outside a --legacy-plaintext-prefix window, left as they are): {Refused.Count}", Refused);
        AppendKeys(text.AppendLine(), $"failed (cannot decrypt, left as they are): {Failed.Count}", Failed);
        return text.ToString();
    }

    private static void AppendKeys(StringBuilder text, string heading, List<string> keys)
    {
        text.Append("  ").Append(heading);
        foreach (var key in keys.Take(20))
        {
            text.AppendLine().Append($"    {key}");
        }
    }
}
