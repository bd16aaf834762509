using EtcdShield.Encryption;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Relay;
using Google.Protobuf;

namespace EtcdShield.Concurrency;

/// <summary>
/// Campaign: etcd stores the candidate's value at <c>name + "/" + lease id in hex</c>, so the value is sealed
/// to that key; a lease for which etcd would store it elsewhere is refused (see <see cref="SessionKey"/>). (On a
/// repeated campaign etcd compares the stored value as bytes and, because every sealing is different, proclaims
/// it again; the plaintext stays the same.)
/// </summary>
internal sealed class CampaignHandler : UnaryHandler<CampaignRequest, CampaignResponse>
{
    private readonly IValueProtector _protector;
    private readonly ValueRequestLimit _limit;

    public CampaignHandler(IValueProtector protector, ValueRequestLimit limit)
    {
        _protector = protector;
        _limit = limit;
    }

    protected override async Task<CampaignResponse> HandleAsync(CampaignRequest request, RelayCall call)
    {
        await _limit.SealWithinAsync(request, async campaign =>
        {
            SessionKey.RequireGrantedLease(campaign.Lease, "campaign");
            var key = SessionKey.For(campaign.Name, campaign.Lease);
            campaign.Value = await _protector.ProtectAsync(key, campaign.Value, await ElectionPlace.NextAsync(_protector, key, call).ConfigureAwait(false), call.CancellationToken).ConfigureAwait(false);
        }).ConfigureAwait(false);
        return await ForwardAsync(request, call).ConfigureAwait(false);
    }
}

/// <summary>
/// Proclaim: etcd puts the new value at exactly the leader's key, on the session of the leader's lease, so the
/// value is sealed to that key. A leader key that is not its own name and lease's session key is refused: etcd
/// would attach the key to another lease (for lease 0, one it grants itself) or create a key outside the election's
/// naming. Without a leader etcd refuses the request itself.
/// </summary>
internal sealed class ProclaimHandler : UnaryHandler<ProclaimRequest, ProclaimResponse>
{
    private readonly IValueProtector _protector;
    private readonly ValueRequestLimit _limit;

    public ProclaimHandler(IValueProtector protector, ValueRequestLimit limit)
    {
        _protector = protector;
        _limit = limit;
    }

    protected override async Task<ProclaimResponse> HandleAsync(ProclaimRequest request, RelayCall call)
    {
        await _limit.SealWithinAsync(request, async proclaim =>
        {
            // Without a leader etcd refuses the request itself, and there is no key to seal the value to.
            if (proclaim.Leader is { } leader)
            {
                SessionKey.RequireLeaderKey(leader.Name, leader.Key, leader.Lease, "proclaim");
                proclaim.Value = await _protector.ProtectAsync(leader.Key, proclaim.Value, await ElectionPlace.NextAsync(_protector, leader.Key, call).ConfigureAwait(false), call.CancellationToken).ConfigureAwait(false);
            }
        }).ConfigureAwait(false);
        return await ForwardAsync(request, call).ConfigureAwait(false);
    }
}

/// <summary>
/// The place an election write will give its key under rollback protection. etcd writes the value itself (Campaign
/// creates the key, or proclaims over it when it exists; Proclaim puts over it), so the proxy cannot guard the write:
/// it reads the key first. The key belongs to one lease, whose holder is the only writer, so the read stays true; a
/// concurrent write by the same holder would leave a value that fails closed (DATA_LOSS), never one served from the
/// wrong place (docs/threat-model.md).
/// </summary>
internal static class ElectionPlace
{
    public static async Task<KeyPlace?> NextAsync(IValueProtector protector, ByteString key, RelayCall call)
    {
        if (!protector.Binds(key.Span))
        {
            return null;
        }

        var current = await call.Kv.RangeAsync(new Protocol.Etcdserverpb.RangeRequest { Key = key, KeysOnly = true }, call.Options).ConfigureAwait(false);
        return KeyPlace.After(current.Kvs.Count > 0 ? current.Kvs[0] : null);
    }
}

/// <summary>
/// Resign writes no value, but etcd opens a session on the leader's lease for it, granting a lease of its own for
/// lease 0: a leader key is checked as for Proclaim.
/// </summary>
internal sealed class ResignHandler : UnaryHandler<ResignRequest, ResignResponse>
{
    protected override async Task<ResignResponse> HandleAsync(ResignRequest request, RelayCall call)
    {
        if (request.Leader is { } leader)
        {
            SessionKey.RequireLeaderKey(leader.Name, leader.Key, leader.Lease, "resign");
        }

        return await ForwardAsync(request, call).ConfigureAwait(false);
    }
}

/// <summary>Leader: the leader's value is opened.</summary>
internal sealed class LeaderHandler : UnaryHandler<LeaderRequest, LeaderResponse>
{
    private readonly KeyValueOpener _opener;

    public LeaderHandler(KeyValueOpener opener) => _opener = opener;

    protected override async Task<LeaderResponse> HandleAsync(LeaderRequest request, RelayCall call)
    {
        var response = await ForwardAsync(request, call).ConfigureAwait(false);
        await _opener.OpenAsync(response.Kv, call.CancellationToken).ConfigureAwait(false);
        return response;
    }
}

/// <summary>Observe: each leader announcement's value is opened as it passes.</summary>
internal sealed class ObserveValueRewriter : IStreamRewriter
{
    private readonly KeyValueOpener _opener;

    public ObserveValueRewriter(KeyValueOpener opener) => _opener = opener;

    public async ValueTask<IMessage> RewriteResponseAsync(IMessage response, CancellationToken cancellationToken)
    {
        await _opener.OpenAsync(((LeaderResponse)response).Kv, cancellationToken).ConfigureAwait(false);
        return response;
    }
}
