using System.Globalization;
using System.Text;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Relay;
using Google.Protobuf;

namespace EtcdShield.Encryption;

/// <summary>
/// Campaign: etcd stores the candidate's value at <c>name + "/" + lease id in hex</c>, so the value is sealed
/// to that key. (On a repeated campaign etcd compares the stored value as bytes and, because every sealing
/// is different, proclaims it again; the plaintext stays the same.)
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

    public static ByteString CandidateKey(ByteString name, long lease) =>
        ByteString.CopyFrom([.. name.Span, .. Encoding.ASCII.GetBytes("/" + lease.ToString("x", CultureInfo.InvariantCulture))]);

    protected override async Task<CampaignResponse> HandleAsync(CampaignRequest request, RelayCall call)
    {
        _limit.CheckPlaintext(request);
        request.Value = await _protector.ProtectAsync(CandidateKey(request.Name, request.Lease), request.Value, call.CancellationToken).ConfigureAwait(false);
        _limit.CheckSealed(request);
        return await ForwardAsync(request, call).ConfigureAwait(false);
    }
}

/// <summary>Proclaim: the new value is sealed to the leader's key.</summary>
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
        _limit.CheckPlaintext(request);
        var key = request.Leader?.Key ?? ByteString.Empty;
        request.Value = await _protector.ProtectAsync(key, request.Value, call.CancellationToken).ConfigureAwait(false);
        _limit.CheckSealed(request);
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

    public ValueTask<IMessage> RewriteRequestAsync(IMessage request, RelayCall call) => ValueTask.FromResult(request);

    public async ValueTask<IMessage> RewriteResponseAsync(IMessage response, RelayCall call)
    {
        await _opener.OpenAsync(((LeaderResponse)response).Kv, call.CancellationToken).ConfigureAwait(false);
        return response;
    }
}
