using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.ReadCache;

/// <summary>
/// The serializable read cache (<c>--serializable-cache-size</c>): its entries (<see cref="RangeCache"/>), the watch
/// that keeps them current (<see cref="KeyspaceWatch"/>), and which requests it answers. The relay reaches etcd
/// through <see cref="Wrap"/>, below authorization and the value handlers, so a cached answer is still authorized
/// per call before the cache is asked, and its values are still opened per call after.
/// </summary>
internal sealed class SerializableReadCache : IDisposable
{
    /// <summary>How long the watch stays open without a cacheable read.</summary>
    public static readonly TimeSpan DefaultIdleAfter = TimeSpan.FromMinutes(1);

    // etcd decides these per call from the metadata (the etcd user a token names, whether the member has a
    // leader), so an answer given to one such call is not an answer to another.
    private static readonly string[] PerCallMetadata = ["token", "authorization", "hasleader"];

    private readonly KeyspaceWatch? _watch;

    public SerializableReadCache(CallInvoker upstream, long budgetBytes, ReadCacheMetrics metrics, TimeProvider time, ILogger<SerializableReadCache> logger)
        : this(upstream, budgetBytes, metrics, time, DefaultIdleAfter, logger)
    {
    }

    internal SerializableReadCache(CallInvoker upstream, long budgetBytes, ReadCacheMetrics metrics, TimeProvider time, TimeSpan idleAfter, ILogger logger)
    {
        if (budgetBytes > 0)
        {
            Entries = new RangeCache(budgetBytes, metrics);
            _watch = new KeyspaceWatch(upstream, Entries, metrics, time, idleAfter, logger);
        }
    }

    /// <summary>The entries, or null when the cache is off.</summary>
    internal RangeCache? Entries { get; }

    internal KeyspaceWatch? Watch => _watch;

    /// <summary><paramref name="upstream"/> with serializable ranges answered from the cache and writes invalidating it; itself when the cache is off.</summary>
    public CallInvoker Wrap(CallInvoker upstream) => Entries is null ? upstream : new CachingInvoker(upstream, this);

    public void Dispose() => _watch?.Dispose();

    /// <summary>The cache key of a range: the request's exact bytes, or null when it is not answered from the cache.</summary>
    internal static ByteString? KeyOf(RangeRequest range, Metadata? headers)
    {
        if (!range.Serializable || range.Revision != 0 || range.Key.IsEmpty || range.CalculateSize() > RangeCache.MaxRequestBytes)
        {
            return null;
        }

        if (headers is not null)
        {
            foreach (var entry in headers)
            {
                if (PerCallMetadata.Contains(entry.Key, StringComparer.OrdinalIgnoreCase))
                {
                    return null;
                }
            }
        }

        return range.ToByteString();
    }

    /// <summary>A copy of the cached answer, or null after opening the watch if it is not open.</summary>
    internal RangeResponse? TryGet(ByteString key, out long generation)
    {
        _watch!.Demand();
        return Entries!.TryGet(key, out generation)?.Clone();
    }
}
