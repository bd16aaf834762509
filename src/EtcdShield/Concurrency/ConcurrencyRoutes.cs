using EtcdShield.Encryption;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Relay;
using EtcdLock = EtcdShield.Protocol.V3lockpb.Lock;

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
            .Handle(Election.Descriptor.FindMethodByName("Campaign"), new CampaignHandler(protector, limit))
            .Handle(Election.Descriptor.FindMethodByName("Proclaim"), new ProclaimHandler(protector, limit))
            .Handle(Election.Descriptor.FindMethodByName("Leader"), new LeaderHandler(opener))
            .Handle(Election.Descriptor.FindMethodByName("Resign"), new ResignHandler())
            .Rewrite(Election.Descriptor.FindMethodByName("Observe"), new ObserveValueRewriter(opener))
            // etcd's own Lock server would write owner keys with plaintext values; the proxy takes its place.
            .Handle(EtcdLock.Descriptor.FindMethodByName("Lock"), new LockHandler(protector, limit))
            .Handle(EtcdLock.Descriptor.FindMethodByName("Unlock"), new UnlockHandler());
    }
}
