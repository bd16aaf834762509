using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;

namespace EtcdShield.Relay;

/// <summary>What to do with a response etcd sent on a watch stream.</summary>
internal enum WatchOutcome
{
    /// <summary>Pass it to the client.</summary>
    Forward,

    /// <summary>It belongs to a watch the proxy cancelled: the client was told, and hears nothing more of it.</summary>
    Drop,

    /// <summary>etcd confirmed a watch the caller may no longer read: cancel it, and tell the client why.</summary>
    Cancel,
}

/// <summary>
/// The watches a client holds on one watch stream: the key range of each, by the id etcd knows it under. etcd
/// answers creates in the order it received them, and a create whose id etcd assigns is only known by its range
/// until then, so creates wait in a queue for their confirmation. Every step is constant time except
/// <see cref="Revoke"/>, which is linear in the watches; the book holds at most <see cref="MaxWatches"/> watches
/// naming at most <see cref="MaxKeyBytes"/> bytes of keys, so what a client can make the proxy hold is bounded.
/// Not thread-safe: the stream's judge takes turns.
/// </summary>
internal sealed class WatchBook
{
    /// <summary>Far more than a kube-apiserver opens on one stream (one watch per resource type).</summary>
    public const int MaxWatches = 10_000;

    /// <summary>Keys and range ends of all watches of one stream together; Kubernetes keys are tens of bytes.</summary>
    public const long MaxKeyBytes = 16L * 1024 * 1024;

    private readonly Dictionary<long, KeyRange> _open = [];
    private readonly Queue<KeyRange> _creating = new();
    private readonly HashSet<long> _cancelled = [];
    private long _keyBytes;

    /// <summary>Watches etcd holds or is creating for this stream, those the proxy cancelled included.</summary>
    public int Count => _open.Count + _creating.Count + _cancelled.Count;

    /// <summary>Records a create about to go to etcd; returns why it may not instead, when the stream is full.</summary>
    public string? Creating(KeyRange range)
    {
        if (Count >= MaxWatches)
        {
            return $"etcdshield: too many watches on one stream (at most {MaxWatches})";
        }

        var size = SizeOf(range);
        if (_keyBytes + size > MaxKeyBytes)
        {
            return $"etcdshield: the watches on one stream name too many key bytes (at most {MaxKeyBytes})";
        }

        _creating.Enqueue(range);
        _keyBytes += size;
        return null;
    }

    /// <summary>
    /// Takes every open watch that <paramref name="refusal"/> gives a reason for off the book, as cancelled: the
    /// caller cancels each in etcd and tells the client. Their events are dropped from now on.
    /// </summary>
    public IReadOnlyList<(long WatchId, string Reason)> Revoke(Func<KeyRange, string?> refusal)
    {
        List<(long, string)>? revoked = null;
        foreach (var (id, range) in _open)
        {
            if (refusal(range) is { } reason)
            {
                (revoked ??= []).Add((id, reason));
            }
        }

        if (revoked is null)
        {
            return [];
        }

        foreach (var (id, _) in revoked)
        {
            _open.Remove(id, out var range);
            _keyBytes -= SizeOf(range!);
            _cancelled.Add(id);
        }

        return revoked;
    }

    /// <summary>
    /// Follows etcd's answer: a confirmed create becomes an open watch (or, when <paramref name="refusal"/> now
    /// refuses its range, one to cancel), a cancellation closes one, and events of a cancelled watch are dropped.
    /// </summary>
    public WatchOutcome Screen(WatchResponse response, Func<KeyRange, string?> refusal, out string? reason)
    {
        reason = null;
        var id = response.WatchId;
        if (response.Created)
        {
            if (!_creating.TryDequeue(out var range))
            {
                // Every create etcd answers went through Creating; anything else is not the proxy's to pass on.
                if (response.Canceled)
                {
                    return WatchOutcome.Drop;
                }

                _cancelled.Add(id);
                reason = "etcdshield: etcd confirmed a watch the proxy did not ask for";
                return WatchOutcome.Cancel;
            }

            if (response.Canceled)
            {
                _keyBytes -= SizeOf(range);
                return WatchOutcome.Forward;
            }

            // etcd reuses an id only after the watch it named is gone.
            _cancelled.Remove(id);
            if (refusal(range) is { } refused)
            {
                _keyBytes -= SizeOf(range);
                _cancelled.Add(id);
                reason = refused;
                return WatchOutcome.Cancel;
            }

            _open[id] = range;
            return WatchOutcome.Forward;
        }

        if (response.Canceled)
        {
            if (_cancelled.Remove(id))
            {
                return WatchOutcome.Drop;
            }

            if (_open.Remove(id, out var closed))
            {
                _keyBytes -= SizeOf(closed);
            }

            return WatchOutcome.Forward;
        }

        return _cancelled.Contains(id) ? WatchOutcome.Drop : WatchOutcome.Forward;
    }

    private static long SizeOf(KeyRange range) => range.Start.Length + (range.End?.Length ?? 0);
}
