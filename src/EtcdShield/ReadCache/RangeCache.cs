using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Google.Protobuf.Collections;

namespace EtcdShield.ReadCache;

/// <summary>
/// etcd's answers to serializable ranges, as etcd gave them (values still sealed), keyed by the exact request, and
/// removed when a key in their range changes: told by the watch of the whole keyspace (<see cref="KeyspaceWatch"/>)
/// and, before their answer returns, by the writes that pass through the proxy.
/// </summary>
/// <remarks>
/// <para>Freshness, in revisions. An entry read at revision R holds etcd's state at R. The watch's position P says
/// that every change up to P has been applied here. Everything below happens under one lock, so a fill and an
/// invalidation never interleave:</para>
/// <list type="bullet">
/// <item><description>An event or a write at revision E removes the entries whose range holds its key and whose R is
/// below E; an entry read at E or later already holds the change.</description></item>
/// <item><description>An answer is stored only while the watch that was up when its request left is still up (the
/// generation), and only if P ≤ R: no change above R has been applied yet, so every later change of its range is
/// still to come and will remove it. It is not stored either if a write through the proxy at a revision above R has
/// already been applied: that write's invalidation came before the entry, and the client who made it must read it.</description></item>
/// <item><description>An entry is served only while the watch is up and P ≥ R (the watch has delivered up to the
/// entry), and P ≥ the revision of every write through the proxy whose keys the proxy cannot name (a lease revoked,
/// a campaign): by then the watch has removed what that write changed.</description></item>
/// <item><description>When the watch ends, or is opened again (an upstream failover ends it too), everything is
/// removed and nothing is served until the new watch says where it starts.</description></item>
/// </list>
/// <para>Bounds: at most <c>budget</c> bytes (requests, keys, answers, and a fixed cost per entry and per key-value),
/// least recently used evicted first; an entry above an eighth of the budget, or a request above
/// <see cref="MaxRequestBytes"/>, is not cached. Single-key entries are found by key, and those in a written range
/// through an index of their keys in etcd's order (bytewise, unsigned), so a range delete examines the entries in its
/// range, not every entry; at most <see cref="MaxRangeEntries"/> range entries, each change checked against them in
/// one pass.</para>
/// </remarks>
internal sealed class RangeCache
{
    /// <summary>Largest serialized request cached: a key with its range end, far above any real key.</summary>
    public const int MaxRequestBytes = 4096;

    /// <summary>Range entries every change is checked against, one by one; the least recently used goes first.</summary>
    public const int MaxRangeEntries = 1024;

    /// <summary>A write whose ranges are more than this is applied by clearing the cache, not by checking each entry against each range.</summary>
    public const int MaxWriteRanges = 16;

    /// <summary>
    /// What an entry costs besides its bytes: its objects (the answer's message, header and list, the request and key
    /// byte strings, the entry), its list nodes and index slots, the set of its key's variants. Measured at about
    /// 630 bytes (RangeCacheMemoryTests); counted with a margin.
    /// </summary>
    public const int EntryOverheadBytes = 768;

    /// <summary>What each parsed key-value of an answer costs besides its bytes: the message and its two byte strings, measured at about 170.</summary>
    public const int KeyValueOverheadBytes = 192;

    private static readonly Comparer<ByteString> KeyOrder = Comparer<ByteString>.Create((x, y) => x.Span.SequenceCompareTo(y.Span));

    private readonly object _lock = new();
    private readonly long _budget;
    private readonly ReadCacheMetrics _metrics;
    private readonly Dictionary<ByteString, Entry> _entries = new(KeyBytesComparer.Instance);
    private readonly Dictionary<ByteString, HashSet<Entry>> _singleKeys = new(KeyBytesComparer.Instance);

    // The keys of _singleKeys in etcd's order: a written range finds its single-key entries without a scan.
    private readonly SortedSet<ByteString> _orderedKeys = new(KeyOrder);
    private readonly List<ByteString> _keysInRange = [];
    private readonly List<Entry> _variants = [];
    private readonly LinkedList<Entry> _recent = new();
    private readonly LinkedList<Entry> _recentRanges = new();
    private long _bytes;
    private bool _established;
    private long _position;
    private long _generation;
    private long _ownWrites;
    private long _floor;
    private List<(long Revision, TaskCompletionSource Reached)>? _waiters;
    private long _examined;
    private long _answered;

    public RangeCache(long budget, ReadCacheMetrics metrics)
    {
        _budget = budget;
        _metrics = metrics;
        metrics.Observe(() => Bytes, () => Count);
    }

    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>For tests: how many entries invalidations have examined, to show a range delete's work follows its range.</summary>
    internal long Examined
    {
        get
        {
            lock (_lock)
            {
                return _examined;
            }
        }
    }

    /// <summary>
    /// The cached answer to <paramref name="request"/> (the serialized request), never to be changed by the caller;
    /// or null, with the generation a fill of this request must present to <see cref="Store"/>.
    /// </summary>
    public RangeResponse? TryGet(ByteString request, out long generation)
    {
        lock (_lock)
        {
            generation = _generation;
            if (_established && _entries.TryGetValue(request, out var entry) && _position >= entry.Revision && _position >= Volatile.Read(ref _floor))
            {
                Touch(entry);
                _answered++;
                _metrics.Hit();
                return entry.Response;
            }
        }

        _metrics.Missed();
        return null;
    }

    /// <summary>Keeps etcd's <paramref name="response"/> (no longer changed by anyone) to <paramref name="request"/>, if the rules above allow.</summary>
    public void Store(ByteString request, RangeRequest range, RangeResponse response, long generation)
    {
        var revision = response.Header?.Revision ?? 0;
        var size = (long)request.Length + range.Key.Length + range.RangeEnd.Length + response.CalculateSize()
            + EntryOverheadBytes + ((long)response.Kvs.Count * KeyValueOverheadBytes);
        if (revision <= 0 || size > _budget / 8)
        {
            return;
        }

        lock (_lock)
        {
            if (!_established || generation != _generation || _position > revision || _ownWrites > revision)
            {
                return;
            }

            if (_entries.TryGetValue(request, out var old))
            {
                Remove(old);
            }

            var entry = new Entry(request, range.Key, range.RangeEnd, response, revision, size);
            _entries.Add(request, entry);
            entry.Recent = _recent.AddFirst(entry);
            if (entry.IsSingleKey)
            {
                if (!_singleKeys.TryGetValue(entry.Key, out var same))
                {
                    _singleKeys.Add(entry.Key, same = []);
                    _orderedKeys.Add(entry.Key);
                }

                same.Add(entry);
            }
            else
            {
                if (_recentRanges.Count >= MaxRangeEntries)
                {
                    Evict(_recentRanges.Last!.Value);
                }

                entry.RecentRange = _recentRanges.AddFirst(entry);
            }

            _bytes += size;
            while (_bytes > _budget && _recent.Last is { } last)
            {
                Evict(last.Value);
            }
        }
    }

    /// <summary>The watch is up: it has delivered every change up to <paramref name="revision"/>, and nothing cached before counts.</summary>
    public void Established(long revision)
    {
        lock (_lock)
        {
            Clear();
            _established = true;
            _answered = 0;
            _position = revision;
            _generation++;
            Wake();
        }
    }

    /// <summary>The watch ended: nothing is served or stored until it is up again.</summary>
    public void Lost()
    {
        lock (_lock)
        {
            Clear();
            _established = false;
            _generation++;
        }
    }

    /// <summary>
    /// The watch delivered <paramref name="events"/> (everything up to the last of them; a <paramref name="fragment"/>
    /// of a larger response, only everything below the last one's revision, whose other events may follow), or none
    /// and everything up to <paramref name="revision"/>.
    /// </summary>
    public void Observed(RepeatedField<Event> events, long revision, bool fragment = false)
    {
        lock (_lock)
        {
            if (!_established)
            {
                return;
            }

            // A response with events has delivered everything up to its last event only: etcd 3.4 cuts a catch-up
            // batch of an unsynced watch at 1,000 revisions (watchBatchMaxRevs) and still stamps it with the
            // store's revision, the rest to follow. Only a response without events (progress) says its revision.
            var delivered = events.Count == 0 ? revision : 0;
            var batch = events.Count > MaxWriteRanges && _recentRanges.Count > 0;
            foreach (var change in events)
            {
                if (change.Kv is { } kv)
                {
                    InvalidateKey(kv.Key, kv.ModRevision, ranges: !batch);
                    delivered = Math.Max(delivered, kv.ModRevision);
                }
            }

            if (batch)
            {
                InvalidateRangesHolding(events);
            }

            _position = Math.Max(_position, fragment ? delivered - 1 : delivered);
            Wake();
        }
    }

    /// <summary>The reads answered from the cache since the watch came up or since the last call: what the watch is worth.</summary>
    public long TakeAnswered()
    {
        lock (_lock)
        {
            var answered = _answered;
            _answered = 0;
            return answered;
        }
    }

    /// <summary>For tests: completes once the watch is up and has delivered everything up to <paramref name="revision"/>.</summary>
    internal Task Reached(long revision)
    {
        lock (_lock)
        {
            if (_established && _position >= revision)
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            (_waiters ??= []).Add((revision, reached));
            return reached.Task;
        }
    }

    /// <summary>A write through the proxy changed <paramref name="ranges"/> at <paramref name="revision"/> (etcd's answer to it is in hand).</summary>
    public void Wrote(IReadOnlyList<WrittenRange> ranges, long revision)
    {
        lock (_lock)
        {
            Invalidate(ranges, revision);
            _ownWrites = Math.Max(_ownWrites, revision);
        }
    }

    /// <summary>A write through the proxy that failed may still have changed <paramref name="ranges"/>; the watch will tell its revision.</summary>
    public void MayHaveWritten(IReadOnlyList<WrittenRange> ranges)
    {
        lock (_lock)
        {
            Invalidate(ranges, long.MaxValue);
        }
    }

    /// <summary>
    /// A write through the proxy changed keys it cannot name (a revoked lease's, an election's) at
    /// <paramref name="revision"/>, or at a revision it cannot tell (0): until the watch has delivered that
    /// revision, which removes what the write changed, nothing is served.
    /// </summary>
    public void WroteUnnamed(long revision)
    {
        lock (_lock)
        {
            if (revision > 0)
            {
                Saw(revision);
            }
            else
            {
                Clear();
                _generation++;
            }
        }
    }

    /// <summary>
    /// An answer of etcd that passed through the proxy showed its state at <paramref name="revision"/>: nothing is
    /// served until the watch has delivered it, so that no read through the proxy goes back below a revision one
    /// already showed (etcd's member never does). Lock-free: every answer passes here.
    /// </summary>
    public void Saw(long revision)
    {
        var floor = Volatile.Read(ref _floor);
        while (revision > floor)
        {
            var was = Interlocked.CompareExchange(ref _floor, revision, floor);
            if (was == floor)
            {
                return;
            }

            floor = was;
        }
    }

    private void Invalidate(IReadOnlyList<WrittenRange> ranges, long revision)
    {
        var wide = 0;
        foreach (var range in ranges)
        {
            if (range.IsSingleKey)
            {
                InvalidateKey(range.Key, revision);
            }
            else
            {
                wide++;
            }
        }

        if (wide == 0)
        {
            return;
        }

        if (wide > MaxWriteRanges)
        {
            Clear();
            return;
        }

        // The single-key entries in each range (at most MaxWriteRanges), found in the ordered index; then one pass
        // over the range entries (at most MaxRangeEntries), each against those ranges.
        foreach (var range in ranges)
        {
            if (!range.IsSingleKey)
            {
                InvalidateKeysIn(range, revision);
            }
        }

        var removed = 0;
        for (var node = _recentRanges.First; node is not null;)
        {
            var next = node.Next;
            var entry = node.Value;
            _examined++;
            if (entry.Revision < revision && OverlapsAny(entry, ranges))
            {
                Remove(entry);
                removed++;
            }

            node = next;
        }

        _metrics.Invalidated(removed);
    }

    private static bool OverlapsAny(Entry entry, IReadOnlyList<WrittenRange> ranges)
    {
        foreach (var range in ranges)
        {
            if (!range.IsSingleKey && entry.Overlaps(range))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Removes the single-key entries below <paramref name="revision"/> whose key is in <paramref name="range"/>: O(log keys + keys in range).</summary>
    private void InvalidateKeysIn(WrittenRange range, long revision)
    {
        if (_orderedKeys.Count == 0)
        {
            return;
        }

        var upper = range.FromKey ? _orderedKeys.Max! : range.RangeEnd;
        if (KeyOrder.Compare(range.Key, upper) > 0)
        {
            return;
        }

        // A copy: removing an entry edits the index under the view. The view holds its upper bound, which a range
        // end excludes.
        _keysInRange.Clear();
        foreach (var key in _orderedKeys.GetViewBetween(range.Key, upper))
        {
            if (range.FromKey || KeyOrder.Compare(key, range.RangeEnd) < 0)
            {
                _keysInRange.Add(key);
            }
        }

        foreach (var key in _keysInRange)
        {
            InvalidateKey(key, revision, ranges: false);
        }

        _keysInRange.Clear();
    }

    private void Wake()
    {
        if (_waiters is null)
        {
            return;
        }

        foreach (var waiter in _waiters.Where(w => w.Revision <= _position).ToList())
        {
            waiter.Reached.TrySetResult();
            _waiters.Remove(waiter);
        }
    }

    /// <summary>
    /// The range entries holding a key of a large batch (a range delete of many keys, a lease's expiry): each entry
    /// looked up among the batch's keys sorted once, O((events + entries) log events) rather than every event
    /// against every entry (measured 183 ms under the lock for 10,000 events and 1,024 range entries). An entry
    /// read at or after the change is removed too: a miss, never a stale answer.
    /// </summary>
    private void InvalidateRangesHolding(RepeatedField<Event> events)
    {
        var keys = events.Where(e => e.Kv is not null).Select(e => e.Kv.Key).ToArray();
        Array.Sort(keys, KeyOrder);
        var removed = 0;
        for (var node = _recentRanges.First; node is not null;)
        {
            var next = node.Next;
            var entry = node.Value;
            var found = Array.BinarySearch(keys, entry.Key, KeyOrder);
            var first = found >= 0 ? found : ~found;
            if (first < keys.Length && entry.Holds(keys[first]))
            {
                Remove(entry);
                removed++;
            }

            node = next;
        }

        _metrics.Invalidated(removed);
    }

    private void InvalidateKey(ByteString key, long revision, bool ranges = true)
    {
        var removed = 0;
        if (_singleKeys.TryGetValue(key, out var same))
        {
            // The variants of one key (limits, keys-only, count-only, ...) cached now; a copy, as Remove edits the set.
            _variants.Clear();
            foreach (var entry in same)
            {
                _examined++;
                if (entry.Revision < revision)
                {
                    _variants.Add(entry);
                }
            }

            foreach (var entry in _variants)
            {
                Remove(entry);
                removed++;
            }

            _variants.Clear();
        }

        // At most MaxRangeEntries.
        for (var node = ranges ? _recentRanges.First : null; node is not null;)
        {
            var next = node.Next;
            var entry = node.Value;
            _examined++;
            if (entry.Revision < revision && entry.Holds(key))
            {
                Remove(entry);
                removed++;
            }

            node = next;
        }

        _metrics.Invalidated(removed);
    }

    private void Touch(Entry entry)
    {
        _recent.Remove(entry.Recent!);
        _recent.AddFirst(entry.Recent!);
        if (entry.RecentRange is { } range)
        {
            _recentRanges.Remove(range);
            _recentRanges.AddFirst(range);
        }
    }

    private void Evict(Entry entry)
    {
        Remove(entry);
        _metrics.Evicted();
    }

    private void Remove(Entry entry)
    {
        _entries.Remove(entry.Request);
        _recent.Remove(entry.Recent!);
        if (entry.RecentRange is { } range)
        {
            _recentRanges.Remove(range);
        }
        else if (_singleKeys.TryGetValue(entry.Key, out var same))
        {
            same.Remove(entry);
            if (same.Count == 0)
            {
                _singleKeys.Remove(entry.Key);
                _orderedKeys.Remove(entry.Key);
            }
        }

        _bytes -= entry.Size;
    }

    private void Clear()
    {
        _metrics.Invalidated(_entries.Count);
        _entries.Clear();
        _singleKeys.Clear();
        _orderedKeys.Clear();
        _recent.Clear();
        _recentRanges.Clear();
        _bytes = 0;
    }

    private sealed class Entry(ByteString request, ByteString key, ByteString rangeEnd, RangeResponse response, long revision, long size)
    {
        public ByteString Request { get; } = request;

        public ByteString Key { get; } = key;

        public RangeResponse Response { get; } = response;

        public long Revision { get; } = revision;

        public long Size { get; } = size;

        public LinkedListNode<Entry>? Recent { get; set; }

        public LinkedListNode<Entry>? RecentRange { get; set; }

        public bool IsSingleKey => rangeEnd.IsEmpty;

        /// <summary>Whether <paramref name="changed"/> is in this entry's range, etcd's way: range end "\0" is every key from the key on.</summary>
        public bool Holds(ByteString changed) =>
            IsSingleKey
                ? changed.Span.SequenceEqual(Key.Span)
                : changed.Span.SequenceCompareTo(Key.Span) >= 0 && (WrittenRange.IsFromKey(rangeEnd) || changed.Span.SequenceCompareTo(rangeEnd.Span) < 0);

        /// <summary>Whether this range entry's range and <paramref name="range"/> (not a single key) share a key.</summary>
        public bool Overlaps(WrittenRange range) =>
            (range.FromKey || Key.Span.SequenceCompareTo(range.RangeEnd.Span) < 0) &&
            (WrittenRange.IsFromKey(rangeEnd) || range.Key.Span.SequenceCompareTo(rangeEnd.Span) < 0);
    }
}
