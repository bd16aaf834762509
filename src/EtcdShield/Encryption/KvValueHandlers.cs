using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Grpc.Core;

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
        _limit.CheckPlaintext(request);
        await _values.SealPutAsync(request, call.CancellationToken).ConfigureAwait(false);
        _limit.CheckSealed(request);
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
/// Txn: values sealed and opened op by op; value compares decided on plaintext under guards, retried
/// while the compared keys keep changing (see <see cref="ValueCompares"/>).
/// </summary>
internal sealed class TxnHandler : UnaryHandler<TxnRequest, TxnResponse>
{
    /// <summary>Enough for heavy contention on one key; past it the client gets ABORTED and may retry.</summary>
    private const int MaxGuardAttempts = 1000;

    private readonly TxnValues _values;
    private readonly ValueCompares _compares;
    private readonly ValueRequestLimit _limit;

    public TxnHandler(TxnValues values, ValueCompares compares, ValueRequestLimit limit)
    {
        _values = values;
        _compares = compares;
        _limit = limit;
    }

    protected override async Task<TxnResponse> HandleAsync(TxnRequest request, RelayCall call)
    {
        _limit.CheckPlaintext(request);
        var sealedTxn = request.Clone();
        await _values.SealAsync(sealedTxn, call.CancellationToken).ConfigureAwait(false);
        _limit.CheckSealed(sealedTxn);

        if (!ValueCompares.AnyIn(request))
        {
            var response = await ForwardAsync(sealedTxn, call).ConfigureAwait(false);
            await _values.OpenAsync(request, response, call.CancellationToken).ConfigureAwait(false);
            return response;
        }

        for (var attempt = 0; attempt < MaxGuardAttempts; attempt++)
        {
            var snapshot = await _compares.ReadAsync(request, call.Kv, call.Options).ConfigureAwait(false);
            var guarded = ValueCompares.Guarded(request, sealedTxn, snapshot);
            var outer = await call.Kv.TxnAsync(guarded, call.Options).ConfigureAwait(false);
            if (!outer.Succeeded)
            {
                // A compared key changed between our read and etcd's commit: decide again on fresh values.
                continue;
            }

            var response = outer.Responses[0].ResponseTxn;
            response.Header = outer.Header;
            await _values.OpenAsync(request, response, call.CancellationToken).ConfigureAwait(false);
            return response;
        }

        throw new RpcException(new Status(StatusCode.Aborted, "etcdshield: the values compared by this txn kept changing; retry"));
    }
}
