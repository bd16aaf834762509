using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;

namespace EtcdShield.Encryption;

/// <summary>
/// Put: the value is sealed to its key before it leaves the proxy; a returned prev_kv is opened. A rollback-protected
/// key's Put is sent as a one-put txn under the guard of its place (<see cref="BoundWrites"/>), and answered as the
/// Put etcd would have answered.
/// </summary>
internal sealed class PutHandler : UnaryHandler<PutRequest, PutResponse>
{
    private readonly TxnValues _values;
    private readonly KeyValueOpener _opener;
    private readonly ValueRequestLimit _limit;
    private readonly BoundWrites _bound;
    private readonly GuardedTxn _guarded;

    public PutHandler(TxnValues values, KeyValueOpener opener, ValueRequestLimit limit, BoundWrites bound, GuardedTxn guarded)
    {
        _values = values;
        _opener = opener;
        _limit = limit;
        _bound = bound;
        _guarded = guarded;
    }

    protected override async Task<PutResponse> HandleAsync(PutRequest request, RelayCall call)
    {
        PutResponse response;
        if (_bound.Binds(request))
        {
            _limit.CheckPlaintext(request);
            var txn = new TxnRequest { Success = { new RequestOp { RequestPut = request } } };
            var committed = await _guarded.CommitAsync(txn, attempt => _bound.SealAsync(txn, attempt, call.Kv, call.Options), _limit, call.Kv, call.Options).ConfigureAwait(false);
            response = new PutResponse { Header = committed.Header, PrevKv = committed.Responses[0].ResponsePut.PrevKv };
        }
        else
        {
            await _limit.SealWithinAsync(request, put => _values.SealPutAsync(put, call.CancellationToken)).ConfigureAwait(false);
            response = await ForwardAsync(request, call).ConfigureAwait(false);
        }

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
/// decided on plaintext under guards (see <see cref="GuardedTxn"/>); puts of rollback-protected keys sealed for
/// their places under guards too (see <see cref="BoundWrites"/>).
/// </summary>
internal sealed class TxnHandler : UnaryHandler<TxnRequest, TxnResponse>
{
    private readonly TxnValues _values;
    private readonly GuardedTxn _guarded;
    private readonly ValueRequestLimit _limit;
    private readonly int _maxTxnOps;
    private readonly BoundWrites _bound;

    public TxnHandler(TxnValues values, GuardedTxn guarded, ValueRequestLimit limit, int maxTxnOps, BoundWrites bound)
    {
        _values = values;
        _guarded = guarded;
        _limit = limit;
        _maxTxnOps = maxTxnOps;
        _bound = bound;
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

        TxnResponse response;
        if (writes && _bound.AnyIn(request))
        {
            response = await _guarded.CommitAsync(request, attempt => _bound.SealAsync(request, attempt, call.Kv, call.Options), _limit, call.Kv, call.Options).ConfigureAwait(false);
            await _values.OpenAsync(request, response, call.CancellationToken).ConfigureAwait(false);
            return response;
        }

        var sealedTxn = request.Clone();
        await _values.SealAsync(sealedTxn, call.CancellationToken).ConfigureAwait(false);
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
