namespace EtcdShield.ReadCache;

/// <summary>
/// The log event ids of this feature, all within its block 2500–2599; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int WatchLost = 2500;
    public const int WatchEstablished = 2501;
    public const int WatchNotPaying = 2502;
}
