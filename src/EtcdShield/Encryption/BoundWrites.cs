using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Grpc.Core;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.Encryption;

/// <summary>
/// Writes under <c>--rollback-protection-prefix</c>. Each Put of a protected key (a Put, or one anywhere in a Txn)
/// is sealed for the place the write gives the key (<see cref="KeyPlace.After"/> its current value), so the txn is
/// committed only while every such key still holds the value that place was computed from: one guard
/// <c>mod_revision(k) == m</c> per key around the client's txn, retried by <see cref="GuardedTxn"/> when a guard
/// fails. The first read is serializable (a stale one only costs a retry); retries read linearizably, so a lagging
/// member cannot make every attempt fail.
/// </summary>
/// <remarks>
/// An <c>ignore_value</c> Put keeps the stored value but gives the key a new version, which would no longer match the
/// place the value was sealed for: the proxy opens the current value (checked at its own place, so a rolled-back
/// value is refused, not re-blessed) and writes it again sealed for the new place. On a key that does not exist it
/// is sent as is, and etcd refuses it as it always does.
/// </remarks>
internal sealed class BoundWrites
{
    private readonly IValueProtector _protector;

    public BoundWrites(IValueProtector protector) => _protector = protector;

    public bool Binds(PutRequest put) => _protector.Binds(put.Key.Span);

    /// <summary>Whether any Put of <paramref name="txn"/>, in either branch or a nested txn, writes a protected key.</summary>
    public bool AnyIn(TxnRequest txn)
    {
        foreach (var op in txn.Success)
        {
            if (Binds(op))
            {
                return true;
            }
        }

        foreach (var op in txn.Failure)
        {
            if (Binds(op))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// <paramref name="original"/> sealed for etcd as it stands now (Put values sealed, value-sorted ranges widened),
    /// with the guards under which those places hold.
    /// </summary>
    public async Task<GuardedTxn.SealedAttempt> SealAsync(TxnRequest original, int attempt, KV.KVClient kv, CallOptions options)
    {
        var keys = new List<ByteString>();
        Collect(original, keys, []);
        var read = new TxnRequest();
        foreach (var key in keys)
        {
            read.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = key, Serializable = attempt == 1 } });
        }

        var answer = await kv.TxnAsync(read, options).ConfigureAwait(false);
        var current = new Dictionary<ByteString, KeyValue?>(keys.Count);
        var guards = new List<Compare>(keys.Count);
        for (var i = 0; i < keys.Count; i++)
        {
            var kvs = answer.Responses[i].ResponseRange.Kvs;
            var found = kvs.Count > 0 ? kvs[0] : null;
            current[keys[i]] = found;
            guards.Add(new Compare { Key = keys[i], Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = found?.ModRevision ?? 0 });
        }

        var sealedTxn = original.Clone();
        await SealOpsAsync(sealedTxn.Success, current, options.CancellationToken).ConfigureAwait(false);
        await SealOpsAsync(sealedTxn.Failure, current, options.CancellationToken).ConfigureAwait(false);
        return new GuardedTxn.SealedAttempt(sealedTxn, guards);
    }

    private bool Binds(RequestOp op) =>
        op.RequestCase switch
        {
            RequestOp.RequestOneofCase.RequestPut => Binds(op.RequestPut),
            RequestOp.RequestOneofCase.RequestTxn => AnyIn(op.RequestTxn),
            _ => false,
        };

    /// <summary>Every distinct protected key the txn puts, once: etcd refuses a txn that puts one key twice on a path.</summary>
    private void Collect(TxnRequest txn, List<ByteString> keys, HashSet<ByteString> seen)
    {
        foreach (var ops in (RepeatedField<RequestOp>[])[txn.Success, txn.Failure])
        {
            foreach (var op in ops)
            {
                if (op.RequestPut is { } put && Binds(put) && seen.Add(put.Key))
                {
                    keys.Add(put.Key);
                }
                else if (op.RequestTxn is { } nested)
                {
                    Collect(nested, keys, seen);
                }
            }
        }
    }

    private async ValueTask SealOpsAsync(RepeatedField<RequestOp> ops, Dictionary<ByteString, KeyValue?> current, CancellationToken cancellationToken)
    {
        foreach (var op in ops)
        {
            switch (op.RequestCase)
            {
                case RequestOp.RequestOneofCase.RequestPut:
                    await SealPutAsync(op.RequestPut, current, cancellationToken).ConfigureAwait(false);
                    break;
                case RequestOp.RequestOneofCase.RequestRange:
                    op.RequestRange = RangeValues.ForUpstream(op.RequestRange);
                    break;
                case RequestOp.RequestOneofCase.RequestTxn:
                    await SealOpsAsync(op.RequestTxn.Success, current, cancellationToken).ConfigureAwait(false);
                    await SealOpsAsync(op.RequestTxn.Failure, current, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
    }

    private async ValueTask SealPutAsync(PutRequest put, Dictionary<ByteString, KeyValue?> current, CancellationToken cancellationToken)
    {
        if (!current.TryGetValue(put.Key, out var stored))
        {
            // Not protected: sealed unbound, as every other write.
            if (put.IgnoreValue)
            {
                RequireNoValue(put);
                return;
            }

            put.Value = await _protector.ProtectAsync(put.Key, put.Value, null, cancellationToken).ConfigureAwait(false);
            return;
        }

        var place = KeyPlace.After(stored);
        if (put.IgnoreValue)
        {
            RequireNoValue(put);
            if (stored is null)
            {
                return;
            }

            var plaintext = await _protector.UnprotectAsync(put.Key, stored.Value, KeyPlace.Of(stored), cancellationToken).ConfigureAwait(false);
            put.IgnoreValue = false;
            put.Value = await _protector.ProtectAsync(put.Key, plaintext, place, cancellationToken).ConfigureAwait(false);
            return;
        }

        put.Value = await _protector.ProtectAsync(put.Key, put.Value, place, cancellationToken).ConfigureAwait(false);
    }

    private static void RequireNoValue(PutRequest put)
    {
        if (!put.Value.IsEmpty)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "etcdserver: value is provided"));
        }
    }
}
