using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// The largest request of each shape the proxy walks value by value, as a client trying to make it work hard
/// would send them. Every target gets the same bytes, so the encrypting proxy's cost is measured against a plain
/// relay (<c>shield-plain</c>) of exactly that request.
/// </summary>
internal static class HostileOperations
{
    /// <summary>etcd's default --max-txn-ops.</summary>
    public const int MaxTxnOps = 128;

    /// <summary>
    /// Value compares on distinct keys take one guard compare each in the proxy, and the guarded txn must stay in
    /// etcd's budget with the client's own ops nested under it: half each is the most that fits both.
    /// </summary>
    public const int GuardedCompares = MaxTxnOps / 2;

    /// <summary>Keys a value-sorted get returns: the proxy decrypts and sorts them all.</summary>
    public const int SortedKeys = 100;

    /// <summary>Consecutive keys from a random start: distinct, as etcd requires of a txn's puts.</summary>
    public static IEnumerable<ByteString> Block(KeySpace keys, Random random, int count)
    {
        var start = random.Next(keys.Count);
        return Enumerable.Range(0, Math.Min(count, keys.Count)).Select(i => keys[(start + i) % keys.Count]);
    }
}

/// <summary>If every one of 64 keys holds the value written, get them (keys only).</summary>
internal sealed class TxnValueComparesOperation(KV.KVClient kv, KeySpace keys, int seed) : ClientOperation(kv, keys, seed)
{
    public override Task ExecuteAsync(CallOptions options)
    {
        var txn = new TxnRequest();
        foreach (var key in HostileOperations.Block(Keys, Random, HostileOperations.GuardedCompares))
        {
            txn.Compare.Add(new Compare { Key = key, Target = CompareTarget.Value, Result = CompareResult.Equal, Value = Keys.Value });
            txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = key, KeysOnly = true } });
        }

        return Kv.TxnAsync(txn, options).ResponseAsync;
    }
}

/// <summary>128 puts in one txn.</summary>
internal sealed class TxnPutsOperation(KV.KVClient kv, KeySpace keys, int seed) : ClientOperation(kv, keys, seed)
{
    public override Task ExecuteAsync(CallOptions options)
    {
        var txn = new TxnRequest();
        txn.Success.Add(HostileOperations.Block(Keys, Random, HostileOperations.MaxTxnOps)
            .Select(key => new RequestOp { RequestPut = new PutRequest { Key = key, Value = Keys.Value } }));
        return Kv.TxnAsync(txn, options).ResponseAsync;
    }
}

/// <summary>The first 100 keys of the value size's prefix, sorted by value (etcd's order NONE: limit + 1 keys read).</summary>
internal sealed class RangeByValueOperation(KV.KVClient kv, KeySpace keys, int seed) : ClientOperation(kv, keys, seed)
{
    public override Task ExecuteAsync(CallOptions options)
    {
        var first = Keys[0].Span;
        var prefix = first[..(first.LastIndexOf((byte)'/') + 1)].ToArray();
        var end = (byte[])prefix.Clone();
        end[^1]++;
        return Kv.RangeAsync(new RangeRequest
        {
            Key = ByteString.CopyFrom(prefix),
            RangeEnd = ByteString.CopyFrom(end),
            SortTarget = RangeRequest.Types.SortTarget.Value,
            Limit = HostileOperations.SortedKeys,
        }, options).ResponseAsync;
    }
}
