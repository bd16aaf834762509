using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Grpc.Core;

namespace EtcdShield.Encryption;

/// <summary>
/// The values inside a transaction: every Put sealed on the way in (nested transactions too), every Range,
/// Put prev_kv and DeleteRange prev_kvs opened on the way out, matched op by op against the branch etcd ran.
/// </summary>
internal sealed class TxnValues
{
    private readonly IValueProtector _protector;
    private readonly KeyValueOpener _opener;
    private readonly RangeValues _ranges;

    public TxnValues(IValueProtector protector, KeyValueOpener opener, RangeValues ranges)
    {
        _protector = protector;
        _opener = opener;
        _ranges = ranges;
    }

    /// <summary>Seals a Put in place. etcd's own rule for ignore_value is applied here so that a value sent
    /// with it never leaves the proxy in plaintext.</summary>
    /// <param name="current">
    /// What etcd holds for the rollback-protected keys the request puts (null: absent), read by <see cref="BoundWrites"/>;
    /// a key found there is sealed for its next place. Any other protected key is refused by the protector.
    /// </param>
    public async ValueTask SealPutAsync(PutRequest put, CancellationToken cancellationToken, IReadOnlyDictionary<ByteString, KeyValue?>? current = null)
    {
        KeyValue? stored = null;
        var bound = current is not null && current.TryGetValue(put.Key, out stored);
        if (put.IgnoreValue)
        {
            if (!put.Value.IsEmpty)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, "etcdserver: value is provided"));
            }

            if (bound && stored is not null)
            {
                // etcd would keep the value but give the key a new version, which the value is not sealed for: write it
                // again for that version, opened at its own place so a rolled-back value is refused, not re-blessed. On a
                // missing key the put goes as is and etcd refuses it as always.
                var plaintext = await _protector.UnprotectAsync(put.Key, stored.Value, KeyPlace.Of(stored), cancellationToken).ConfigureAwait(false);
                put.IgnoreValue = false;
                put.Value = await _protector.ProtectAsync(put.Key, plaintext, KeyPlace.After(stored), cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        put.Value = await _protector.ProtectAsync(put.Key, put.Value, bound ? KeyPlace.After(stored) : null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Rewrites a (cloned) transaction for etcd: Put values sealed (protected keys for their next place, see
    /// <see cref="SealPutAsync"/>), value-sorted ranges widened.</summary>
    public async ValueTask SealAsync(TxnRequest txn, CancellationToken cancellationToken, IReadOnlyDictionary<ByteString, KeyValue?>? current = null)
    {
        await SealOpsAsync(txn.Success, current, cancellationToken).ConfigureAwait(false);
        await SealOpsAsync(txn.Failure, current, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Opens etcd's answer to the sealed form of <paramref name="original"/>.</summary>
    public async ValueTask OpenAsync(TxnRequest original, TxnResponse response, CancellationToken cancellationToken)
    {
        var branch = response.Succeeded ? original.Success : original.Failure;
        for (var i = 0; i < branch.Count && i < response.Responses.Count; i++)
        {
            var op = branch[i];
            var result = response.Responses[i];
            switch (op.RequestCase)
            {
                case RequestOp.RequestOneofCase.RequestRange when result.ResponseRange is not null:
                    await _ranges.OpenAsync(op.RequestRange, result.ResponseRange, cancellationToken).ConfigureAwait(false);
                    break;
                case RequestOp.RequestOneofCase.RequestPut when result.ResponsePut?.PrevKv is not null:
                    await _opener.OpenAsync(result.ResponsePut.PrevKv, cancellationToken).ConfigureAwait(false);
                    break;
                case RequestOp.RequestOneofCase.RequestDeleteRange when result.ResponseDeleteRange is not null:
                    await _opener.OpenAllAsync(result.ResponseDeleteRange.PrevKvs, cancellationToken).ConfigureAwait(false);
                    break;
                case RequestOp.RequestOneofCase.RequestTxn when result.ResponseTxn is not null:
                    await OpenAsync(op.RequestTxn, result.ResponseTxn, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
    }

    private async ValueTask SealOpsAsync(RepeatedField<RequestOp> ops, IReadOnlyDictionary<ByteString, KeyValue?>? current, CancellationToken cancellationToken)
    {
        foreach (var op in ops)
        {
            switch (op.RequestCase)
            {
                case RequestOp.RequestOneofCase.RequestPut:
                    await SealPutAsync(op.RequestPut, cancellationToken, current).ConfigureAwait(false);
                    break;
                case RequestOp.RequestOneofCase.RequestRange:
                    op.RequestRange = RangeValues.ForUpstream(op.RequestRange);
                    break;
                case RequestOp.RequestOneofCase.RequestTxn:
                    await SealAsync(op.RequestTxn, cancellationToken, current).ConfigureAwait(false);
                    break;
            }
        }
    }
}
