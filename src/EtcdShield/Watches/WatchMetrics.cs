using System.Diagnostics.Metrics;

namespace EtcdShield.Watches;

/// <summary>Shared upstream watches, their subscribers, slow watches moved off them and back, and the bytes queued: the meter of watch sharing.</summary>
internal sealed class WatchMetrics
{
    public const string MeterName = "EtcdShield.Watches";

    private readonly UpDownCounter<long> _feeds;
    private readonly UpDownCounter<long> _subscribers;
    private readonly Counter<long> _demotions;
    private readonly Counter<long> _rejoins;

    public WatchMetrics(IMeterFactory meterFactory, Func<long> bufferedBytes)
    {
        var meter = meterFactory.Create(MeterName);
        _feeds = meter.CreateUpDownCounter<long>("etcdshield.watch.feeds", unit: "{watch}", description: "Shared upstream watches open now.");
        _subscribers = meter.CreateUpDownCounter<long>("etcdshield.watch.subscribers", unit: "{watch}", description: "Client watches served from a shared upstream watch now.");
        _demotions = meter.CreateCounter<long>("etcdshield.watch.demotions", unit: "{watch}", description: "Client watches moved to their own upstream watch because their stream's queue was full.");
        _rejoins = meter.CreateCounter<long>("etcdshield.watch.rejoins", unit: "{watch}", description: "Client watches that caught up on their own upstream watch and joined a shared one.");
        meter.CreateObservableGauge("etcdshield.watch.buffered", bufferedBytes, unit: "By", description: "Bytes held in watch streams' queues and shared watch histories (bounded by --watch-buffer-bytes).");
    }

    public void FeedOpened() => _feeds.Add(1);

    public void FeedClosed() => _feeds.Add(-1);

    public void Subscribed() => _subscribers.Add(1);

    public void Unsubscribed() => _subscribers.Add(-1);

    public void Demoted() => _demotions.Add(1);

    public void Rejoined() => _rejoins.Add(1);
}
