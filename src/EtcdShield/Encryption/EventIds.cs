namespace EtcdShield.Encryption;

/// <summary>
/// The log event ids of this feature, all within its block 1300–1399; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int DecryptFailed = 1301;
    public const int PlaintextRefused = 1302;
    public const int LegacyPlaintextRead = 1303;
    public const int EncryptFailed = 1304;
    public const int TxnGuardExhausted = 1305;
}
