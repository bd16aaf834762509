namespace EtcdShield.Hosting;

/// <summary>
/// The log event ids of this feature, all within its block 0–99; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int Listening = 1;
    public const int EncryptionDisabled = 2;
    public const int PolicyLoaded = 3;
    public const int NotifyFailed = 4;
}
