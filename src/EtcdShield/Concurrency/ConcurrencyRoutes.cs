using EtcdShield.Encryption;
using EtcdShield.Relay;

namespace EtcdShield.Concurrency;

/// <summary>
/// The handlers of etcd's v3 concurrency services, Lock and Election: both store values (a candidate's, a lock
/// owner's) and name keys under the proxy's seal, so each of their methods is handled here.
/// </summary>
internal static class ConcurrencyRoutes
{
    public static void AddTo(RelayRoutes routes, IValueProtector protector, ValueLimits limits)
    {
        var opener = new KeyValueOpener(protector);
        var limit = new ValueRequestLimit(limits.MaxRequestBytes);
        routes
            .Handle("Election/Campaign", new CampaignHandler(protector, limit))
            .Handle("Election/Proclaim", new ProclaimHandler(protector, limit))
            .Handle("Election/Leader", new LeaderHandler(opener))
            .Handle("Election/Resign", new ResignHandler())
            .Rewrite("Election/Observe", new ObserveValueRewriter(opener))
            // etcd's own Lock server would write owner keys with plaintext values; the proxy takes its place.
            .Handle("Lock/Lock", new LockHandler(protector, limit))
            .Handle("Lock/Unlock", new UnlockHandler());
    }
}
