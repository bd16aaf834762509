using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;

namespace EtcdShield.Encryption;

/// <summary>
/// The value handlers of the KV and Watch services, keyed by method: every path on which a value enters or leaves
/// etcd through them. Keys, leases and the rest pass as they are; the concurrency services have their own handlers,
/// and <see cref="ValueCoverage"/> checks, once all are composed, that no method able to carry a value was left out.
/// </summary>
internal static class ValueRoutes
{
    public static void AddTo(
        RelayRoutes routes,
        IValueProtector protector,
        ValueLimits limits,
        TimeProvider time,
        EncryptionMetrics metrics,
        ILoggerFactory loggers)
    {
        var opener = new KeyValueOpener(protector);
        var ranges = new RangeValues(opener);
        var txnValues = new TxnValues(protector, opener, ranges);
        var limit = new ValueRequestLimit(limits.MaxRequestBytes);
        var guarded = new GuardedTxn(new ValueCompares(opener), limits.MaxTxnOps, time, metrics, loggers.CreateLogger<GuardedTxn>());
        var bound = new BoundWrites(protector, txnValues);
        routes
            .Handle(KV.Descriptor.FindMethodByName("Put"), new PutHandler(txnValues, opener, limit, bound, guarded))
            .Handle(KV.Descriptor.FindMethodByName("Range"), new RangeHandler(ranges))
            .Handle(KV.Descriptor.FindMethodByName("DeleteRange"), new DeleteRangeHandler(opener))
            .Handle(KV.Descriptor.FindMethodByName("Txn"), new TxnHandler(txnValues, guarded, limit, limits.MaxTxnOps, bound))
            .Rewrite(Watch.Descriptor.FindMethodByName("Watch"), new WatchValueRewriter(opener));
    }
}

/// <summary>etcd's limits the value handlers apply before anything reaches etcd (its --max-request-bytes and --max-txn-ops).</summary>
internal sealed record ValueLimits(int MaxRequestBytes, int MaxTxnOps);
