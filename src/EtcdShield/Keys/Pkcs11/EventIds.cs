namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// The log event ids of this feature, all within its block 1400–1499; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int TokenLost = 1401;
    public const int ModuleReinitialized = 1402;
    public const int TokenRecovered = 1403;
    public const int LoggedIn = 1404;
    public const int WeakKek = 1410;
    public const int KekCreated = 1411;
    public const int PinFileReadableByOthers = 1412;
    public const int ForeignUnwrapKey = 1413;
}
