namespace EtcdShield.Relay;

/// <summary>
/// The log event ids of this feature, all within its block 200–299; each event is named as its log method.
/// Operators' alert rules match these ids and names, so neither changes once released: a new event takes a
/// free id of the block, and EventIdsTests keeps the blocks apart.
/// </summary>
internal static class EventIds
{
    public const int UnexpectedFailure = 200;
    public const int UpstreamUnreachable = 201;
    public const int UpstreamMemberSkipped = 202;
}
