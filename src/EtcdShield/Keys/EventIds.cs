namespace EtcdShield.Keys;

/// <summary>
/// The log event ids of this feature, all within its block 1200–1299; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int DataKeyCreated = 1201;
    public const int DataKeyCreationFailed = 1202;
    public const int DataKeyUnwrapped = 1203;
    public const int DataKeyUnwrapFailed = 1204;
    public const int KeyRingReplaced = 1205;
    public const int CheckFailed = 1210;
    public const int RotationDeferred = 1211;
    public const int CheckCrashed = 1212;
    public const int DevelopmentOnly = 1220;
    public const int ReadableByOthers = 1221;
}
