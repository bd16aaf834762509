namespace EtcdShield.Tls;

/// <summary>
/// The log event ids of this feature, all within its block 100–199; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int NoCertificate = 100;
    public const int UntrustedCertificate = 101;
    public const int NotAllowed = 102;
    public const int Revoked = 103;
    public const int AmbiguousClientIdentity = 104;
    public const int Expiring = 110;
}
