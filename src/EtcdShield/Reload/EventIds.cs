namespace EtcdShield.Reload;

/// <summary>
/// The log event ids of this feature, all within its block 600–699; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int Reloaded = 600;
    public const int ReloadFailed = 601;
    public const int ReloadLoopFailed = 602;
}
