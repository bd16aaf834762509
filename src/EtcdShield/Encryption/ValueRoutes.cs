using System.Diagnostics.Metrics;
using EtcdShield.Locking;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Relay;
using Microsoft.Extensions.Logging;
using EtcdLock = EtcdShield.Protocol.V3lockpb.Lock;

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
            .Handle(KV.Descriptor.FindMethodByName("Put"), new PutHandler(txnValues, opener, limit))
            .Handle(KV.Descriptor.FindMethodByName("Range"), new RangeHandler(ranges))
            .Handle(KV.Descriptor.FindMethodByName("DeleteRange"), new DeleteRangeHandler(opener))
            .Handle(KV.Descriptor.FindMethodByName("Txn"), new TxnHandler(txnValues, guarded, limit, limits.MaxTxnOps))
            .Rewrite(Watch.Descriptor.FindMethodByName("Watch"), new WatchValueRewriter(opener))
            .Handle(Election.Descriptor.FindMethodByName("Campaign"), new CampaignHandler(protector, limit))
            .Handle(Election.Descriptor.FindMethodByName("Proclaim"), new ProclaimHandler(protector, limit))
            .Handle(Election.Descriptor.FindMethodByName("Leader"), new LeaderHandler(opener))
            .Handle(Election.Descriptor.FindMethodByName("Resign"), new ResignHandler())
            .Rewrite(Election.Descriptor.FindMethodByName("Observe"), new ObserveValueRewriter(opener))
            // etcd's own Lock server would write owner keys with plaintext values; the proxy takes its place.
            .Handle(EtcdLock.Descriptor.FindMethodByName("Lock"), new LockHandler(protector, limit))
            .Handle(EtcdLock.Descriptor.FindMethodByName("Unlock"), new UnlockHandler());
        ValueCoverage.Require(EtcdApi.Services.SelectMany(s => s.Methods), routes.Covers);
    }
}

/// <summary>etcd's limits the value handlers apply before anything reaches etcd (its --max-request-bytes and --max-txn-ops).</summary>
internal sealed record ValueLimits(int MaxRequestBytes, int MaxTxnOps);
