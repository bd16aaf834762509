namespace EtcdShield.Microbench;

/// <summary>Quick runs measure only the 1 KiB case the goals are stated for; full runs every size.</summary>
internal static class MicrobenchMode
{
    public static bool Quick { get; set; } = true;
}
