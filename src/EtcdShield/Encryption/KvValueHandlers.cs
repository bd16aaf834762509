using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;

namespace EtcdShield.Encryption;

/// <summary>Put: the value is sealed to its key before it leaves the proxy; a returned prev_kv is opened.</summary>
internal sealed class PutHandler : UnaryHandler<PutRequest, PutResponse>
{
    private readonly TxnValues _values;
    private readonly KeyValueOpener _opener;
    private readonly ValueRequestLimit _limit;

    public PutHandler(TxnValues values, KeyValueOpener opener, ValueRequestLimit limit)
    {
        _values = values;
        _opener = opener;
        _limit = limit;
    }

    protected override async Task<PutResponse> HandleAsync(PutRequest request, RelayCall call)
    {
        await _limit.SealWithinAsync(request, put => _values.SealPutAsync(put, call.CancellationToken)).ConfigureAwait(false);
        var response = await ForwardAsync(request, call).ConfigureAwait(false);
        await _opener.OpenAsync(response.PrevKv, call.CancellationToken).ConfigureAwait(false);
        return response;
    }
}

/// <summary>Range: values opened, value sorts done on plaintext.</summary>
internal sealed class RangeHandler : UnaryHandler<RangeRequest, RangeResponse>
{
    private readonly RangeValues _ranges;

    public RangeHandler(RangeValues ranges) => _ranges = ranges;

    protected override async Task<RangeResponse> HandleAsync(RangeRequest request, RelayCall call)
    {
        var response = await ForwardAsync(RangeValues.ForUpstream(request), call).ConfigureAwait(false);
        await _ranges.OpenAsync(request, response, call.CancellationToken).ConfigureAwait(false);
        return response;
    }
}

/// <summary>DeleteRange: the deleted values returned with prev_kv are opened.</summary>
internal sealed class DeleteRangeHandler : UnaryHandler<DeleteRangeRequest, DeleteRangeResponse>
{
    private readonly KeyValueOpener _opener;

    public DeleteRangeHandler(KeyValueOpener opener) => _opener = opener;

    protected override async Task<DeleteRangeResponse> HandleAsync(DeleteRangeRequest request, RelayCall call)
    {
        var response = await ForwardAsync(request, call).ConfigureAwait(false);
        await _opener.OpenAllAsync(response.PrevKvs, call.CancellationToken).ConfigureAwait(false);
        return response;
    }
}

/// <summary>
/// Txn: refused as etcd would refuse it before anything else; values sealed and opened op by op; value compares
/// decided on plaintext under guards (see <see cref="GuardedTxn"/>).
/// </summary>
internal sealed class TxnHandler : UnaryHandler<TxnRequest, TxnResponse>
{
    private readonly TxnValues _values;
    private readonly GuardedTxn _guarded;
    private readonly ValueRequestLimit _limit;
    private readonly int _maxTxnOps;

    public TxnHandler(TxnValues values, GuardedTxn guarded, ValueRequestLimit limit, int maxTxnOps)
    {
        _values = values;
        _guarded = guarded;
        _limit = limit;
        _maxTxnOps = maxTxnOps;
    }

    protected override async Task<TxnResponse> HandleAsync(TxnRequest request, RelayCall call)
    {
        TxnRequestCheck.Check(request, _maxTxnOps);
        // etcd serves a txn of ranges alone without raft, and so never says such a txn is too large.
        var writes = !TxnRequestCheck.IsReadOnly(request);
        if (writes)
        {
            _limit.CheckPlaintext(request);
        }

        var sealedTxn = request.Clone();
        await _values.SealAsync(sealedTxn, call.CancellationToken).ConfigureAwait(false);
        TxnResponse response;
        if (ValueCompares.AnyIn(request))
        {
            response = await _guarded.CommitAsync(request, sealedTxn, _limit, call.Kv, call.Options).ConfigureAwait(false);
        }
        else
        {
            if (writes)
            {
                _limit.CheckSealed(sealedTxn);
            }

            response = await ForwardAsync(sealedTxn, call).ConfigureAwait(false);
        }

        await _values.OpenAsync(request, response, call.CancellationToken).ConfigureAwait(false);
        return response;
    }
}
