using System.Diagnostics.Metrics;

namespace EtcdShield.ReadCache;

/// <summary>The serializable read cache's counters and its size: the "EtcdShield.ReadCache" meter.</summary>
internal sealed class ReadCacheMetrics
{
    public const string MeterName = "EtcdShield.ReadCache";

    private readonly Counter<long> _hits;
    private readonly Counter<long> _misses;
    private readonly Counter<long> _evictions;
    private readonly Counter<long> _invalidations;
    private readonly Counter<long> _suspensions;
    private Func<long> _bytes = () => 0;
    private Func<long> _entries = () => 0;

    public ReadCacheMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        _hits = meter.CreateCounter<long>("etcdshield.read_cache.hits", "{request}", "Serializable ranges answered from the cache.");
        _misses = meter.CreateCounter<long>("etcdshield.read_cache.misses", "{request}", "Cacheable serializable ranges sent to etcd: not cached, or not servable yet.");
        _evictions = meter.CreateCounter<long>("etcdshield.read_cache.evictions", "{entry}", "Entries removed to stay within --serializable-cache-size.");
        _invalidations = meter.CreateCounter<long>("etcdshield.read_cache.invalidations", "{entry}", "Entries removed because a key in their range changed, or the watch keeping them current ended.");
        _suspensions = meter.CreateCounter<long>("etcdshield.read_cache.suspensions", "{suspension}", "Times the cache's watch was closed because the cache answered fewer reads than a quarter of the changes the watch delivered.");
        // Exported at zero from the start, as every counter a dashboard or an alert reads (docs/operations.md).
        _hits.Add(0);
        _misses.Add(0);
        _evictions.Add(0);
        _invalidations.Add(0);
        _suspensions.Add(0);
        meter.CreateObservableGauge("etcdshield.read_cache.bytes", () => _bytes(), "By", "Bytes the cache holds, as it counts them against --serializable-cache-size.");
        meter.CreateObservableGauge("etcdshield.read_cache.entries", () => _entries(), "{entry}", "Entries the cache holds.");
    }

    public void Hit() => _hits.Add(1);

    public void Missed() => _misses.Add(1);

    public void Evicted() => _evictions.Add(1);

    public void Suspended() => _suspensions.Add(1);

    public void Invalidated(int entries)
    {
        if (entries > 0)
        {
            _invalidations.Add(entries);
        }
    }

    /// <summary>Where the gauges read from: the one cache of the process.</summary>
    public void Observe(Func<long> bytes, Func<long> entries)
    {
        _bytes = bytes;
        _entries = entries;
    }
}
