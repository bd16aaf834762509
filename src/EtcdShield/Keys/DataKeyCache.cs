using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>
/// Unwrapped data keys by their whole wrapping (<see cref="DataKeyWrapping"/>), bounded in size and age. The cache
/// owns its keys: an evicted or expired key is disposed (zeroed) at once, and a reader still holding it gets
/// <see cref="ObjectDisposedException"/> and looks again. Lookups are lock-free and allocation-free; changes are
/// rare (one per unwrap) and serialized.
/// </summary>
internal sealed class DataKeyCache : IDisposable
{
    private readonly ConcurrentDictionary<DataKeyWrapping, Entry> _entries = new(DataKeyWrapping.Comparer.Instance);
    private readonly ConcurrentDictionary<DataKeyWrapping, Entry>.AlternateLookup<DataKeyWrapping.Lookup> _byEnvelope;
    private readonly Lock _sync = new();
    private readonly int _capacity;
    private readonly TimeSpan _ttl;
    private readonly TimeProvider _time;
    private bool _disposed;

    public DataKeyCache(int capacity, TimeSpan ttl, TimeProvider timeProvider)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _capacity = capacity;
        _ttl = ttl;
        _time = timeProvider;
        _byEnvelope = _entries.GetAlternateLookup<DataKeyWrapping.Lookup>();
    }

    /// <summary>The data key unwrapped from exactly this KEK id and wrapped key, if cached.</summary>
    public bool TryGet(DataKeyId id, ReadOnlySpan<byte> kekId, ReadOnlySpan<byte> wrappedKey, [NotNullWhen(true)] out DataKey? key)
    {
        if (_byEnvelope.TryGetValue(new DataKeyWrapping.Lookup(id, kekId, wrappedKey), out Entry? entry))
        {
            long now = _time.GetTimestamp();
            if (!IsExpired(entry, now) && !entry.Key.IsDisposed)
            {
                entry.LastUsed = now;
                key = entry.Key;
                return true;
            }

            Remove(entry);
        }

        key = null;
        return false;
    }

    /// <summary>
    /// Takes ownership of <paramref name="key"/> and returns the instance now cached for its wrapping: a live one
    /// cached earlier wins (and <paramref name="key"/> is disposed) so concurrent unwraps converge on one instance.
    /// Another wrapping of the same data key is another entry, so adding one never displaces a good one.
    /// </summary>
    public DataKey Add(DataKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        DataKeyWrapping wrapping = DataKeyWrapping.Of(key);
        lock (_sync)
        {
            if (_disposed)
            {
                key.Dispose();
                throw new ObjectDisposedException(nameof(DataKeyCache));
            }

            long now = _time.GetTimestamp();
            if (_entries.TryGetValue(wrapping, out Entry? existing))
            {
                if (!IsExpired(existing, now) && !existing.Key.IsDisposed)
                {
                    key.Dispose();
                    return existing.Key;
                }

                Remove(existing);
            }

            if (_entries.Count >= _capacity)
            {
                EvictLocked(now);
            }

            _entries[wrapping] = new Entry(wrapping, key, now);
            return key;
        }
    }

    /// <summary>
    /// Keeps a copy of a data key that is about to be retired from encryption, for a full TTL from now, so values
    /// it just sealed keep decrypting without a KEK call. Does not take ownership of <paramref name="key"/>.
    /// </summary>
    public void Retain(DataKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        DataKeyWrapping wrapping = DataKeyWrapping.Of(key);
        lock (_sync)
        {
            if (_disposed)
            {
                return;
            }

            if (_entries.TryGetValue(wrapping, out Entry? existing)
                && !existing.Key.IsDisposed
                && _entries.TryUpdate(existing.Wrapping, new Entry(existing.Wrapping, existing.Key, _time.GetTimestamp()), existing))
            {
                return;
            }
        }

        Add(key.Duplicate());
    }

    /// <summary>How many data keys are cached per KEK id (linear in the cache's bounded size; read at each metrics scrape).</summary>
    public Dictionary<string, int> CountByKek()
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (KeyValuePair<DataKeyWrapping, Entry> pair in _entries)
        {
            string kekId = pair.Value.Key.KekId;
            counts[kekId] = counts.GetValueOrDefault(kekId) + 1;
        }

        return counts;
    }

    public void Dispose()
    {
        lock (_sync)
        {
            _disposed = true;
            foreach (KeyValuePair<DataKeyWrapping, Entry> pair in _entries)
            {
                Remove(pair.Value);
            }
        }
    }

    private bool IsExpired(Entry entry, long now) => _time.GetElapsedTime(entry.Inserted, now) >= _ttl;

    private void EvictLocked(long now)
    {
        Entry? leastRecentlyUsed = null;
        foreach (KeyValuePair<DataKeyWrapping, Entry> pair in _entries)
        {
            if (IsExpired(pair.Value, now))
            {
                Remove(pair.Value);
            }
            else if (leastRecentlyUsed is null || pair.Value.LastUsed < leastRecentlyUsed.LastUsed)
            {
                leastRecentlyUsed = pair.Value;
            }
        }

        if (_entries.Count >= _capacity && leastRecentlyUsed is not null)
        {
            Remove(leastRecentlyUsed);
        }
    }

    private void Remove(Entry entry)
    {
        // Only the caller that actually removes this entry disposes its key.
        if (_entries.TryRemove(KeyValuePair.Create(entry.Wrapping, entry)))
        {
            entry.Key.Dispose();
        }
    }

    private sealed class Entry(DataKeyWrapping wrapping, DataKey key, long inserted)
    {
        private long _lastUsed = inserted;

        public DataKeyWrapping Wrapping { get; } = wrapping;

        public DataKey Key { get; } = key;

        public long Inserted { get; } = inserted;

        public long LastUsed
        {
            get => Volatile.Read(ref _lastUsed);
            set => Volatile.Write(ref _lastUsed, value);
        }
    }
}
