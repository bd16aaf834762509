namespace EtcdShield.Migration;

/// <summary>
/// The log event ids of this feature, all within its block 1500–1599; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int CannotDecrypt = 1500;
    public const int KeptChanging = 1501;
    public const int MigrateRefusedPlaintext = 1502;
    public const int BoundWithoutProtection = 1503;
}
