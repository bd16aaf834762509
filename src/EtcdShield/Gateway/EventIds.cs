namespace EtcdShield.Gateway;

/// <summary>
/// The log event ids of this feature, all within its block 2200–2299; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int StreamErrorUndelivered = 2200;
    public const int UpstreamMemberUnreachable = 2250;
}
