using System.Diagnostics.Metrics;
using EtcdShield.Locking;
using EtcdShield.Relay;

namespace EtcdShield.Encryption;

/// <summary>
/// The value handlers, keyed by method: every path on which a value enters or leaves etcd, and every one where
/// etcd would name a key the proxy seals for (Resign, Lock). Keys, leases and the rest pass as they are; <see cref="ValueCoverage"/> checks, when the proxy is built, that no method
/// able to carry a value was left out of this table.
/// </summary>
internal static class ValueRoutes
{
    public static void AddTo(
        RelayRoutes routes,
        IValueProtector protector,
        ValueLimits limits,
        TimeProvider time,
        IMeterFactory meters,
        ILoggerFactory loggers)
    {
        var opener = new KeyValueOpener(protector);
        var ranges = new RangeValues(opener);
        var txnValues = new TxnValues(protector, opener, ranges);
        var limit = new ValueRequestLimit(limits.MaxRequestBytes);
        var guarded = new GuardedTxn(new ValueCompares(opener), limits.MaxTxnOps, time, meters, loggers.CreateLogger<GuardedTxn>());
        routes
            .Handle("KV/Put", new PutHandler(txnValues, opener, limit))
            .Handle("KV/Range", new RangeHandler(ranges))
            .Handle("KV/DeleteRange", new DeleteRangeHandler(opener))
            .Handle("KV/Txn", new TxnHandler(txnValues, guarded, limit, limits.MaxTxnOps))
            .Rewrite("Watch/Watch", new WatchValueRewriter(opener))
            .Handle("Election/Campaign", new CampaignHandler(protector, limit))
            .Handle("Election/Proclaim", new ProclaimHandler(protector, limit))
            .Handle("Election/Leader", new LeaderHandler(opener))
            .Handle("Election/Resign", new ResignHandler())
            .Rewrite("Election/Observe", new ObserveValueRewriter(opener))
            // etcd's own Lock server would write owner keys with plaintext values; the proxy takes its place.
            .Handle("Lock/Lock", new LockHandler(protector, limit))
            .Handle("Lock/Unlock", new UnlockHandler());
        ValueCoverage.Require(EtcdApi.Services.SelectMany(s => s.Methods), routes.Covers);
    }
}

/// <summary>etcd's limits the value handlers apply before anything reaches etcd (its --max-request-bytes and --max-txn-ops).</summary>
internal sealed record ValueLimits(int MaxRequestBytes, int MaxTxnOps);
