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
/// <remarks>The sealing itself, <c>ignore_value</c> puts included, is <see cref="TxnValues.SealPutAsync"/>'s, given what was read.</remarks>
internal sealed class BoundWrites
{
    private readonly IValueProtector _protector;
    private readonly TxnValues _values;

    public BoundWrites(IValueProtector protector, TxnValues values)
    {
        _protector = protector;
        _values = values;
    }

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
        await _values.SealAsync(sealedTxn, options.CancellationToken, current).ConfigureAwait(false);
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
}
