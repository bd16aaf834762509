using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>
/// Unwrapped data keys by id, bounded in size and age. The cache owns its keys: an evicted or expired key is
/// disposed (zeroed) at once, and a reader still holding it gets <see cref="ObjectDisposedException"/> and looks
/// again. Lookups are lock-free; changes are rare (one per unwrap) and serialized.
/// </summary>
internal sealed class DataKeyCache : IDisposable
{
    private readonly ConcurrentDictionary<DataKeyId, Entry> _entries = new();
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
    }

    public int Count => _entries.Count;

    public bool TryGet(DataKeyId id, [NotNullWhen(true)] out DataKey? key)
    {
        if (_entries.TryGetValue(id, out Entry? entry))
        {
            long now = _time.GetTimestamp();
            if (!IsExpired(entry, now) && !entry.Key.IsDisposed)
            {
                entry.LastUsed = now;
                key = entry.Key;
                return true;
            }

            Remove(id, entry);
        }

        key = null;
        return false;
    }

    /// <summary>
    /// Takes ownership of <paramref name="key"/> and returns the instance now cached for its id: a live one cached
    /// earlier wins (and <paramref name="key"/> is disposed) so concurrent unwraps converge on one instance.
    /// </summary>
    public DataKey Add(DataKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        lock (_sync)
        {
            if (_disposed)
            {
                key.Dispose();
                throw new ObjectDisposedException(nameof(DataKeyCache));
            }

            long now = _time.GetTimestamp();
            if (_entries.TryGetValue(key.Id, out Entry? existing))
            {
                if (!IsExpired(existing, now) && !existing.Key.IsDisposed)
                {
                    key.Dispose();
                    return existing.Key;
                }

                Remove(key.Id, existing);
            }

            if (_entries.Count >= _capacity)
            {
                EvictLocked(now);
            }

            _entries[key.Id] = new Entry(key, now);
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
        lock (_sync)
        {
            if (_disposed)
            {
                return;
            }

            if (_entries.TryGetValue(key.Id, out Entry? existing)
                && !existing.Key.IsDisposed
                && _entries.TryUpdate(key.Id, new Entry(existing.Key, _time.GetTimestamp()), existing))
            {
                return;
            }
        }

        Add(key.Duplicate());
    }

    public void Dispose()
    {
        lock (_sync)
        {
            _disposed = true;
            foreach (KeyValuePair<DataKeyId, Entry> pair in _entries)
            {
                Remove(pair.Key, pair.Value);
            }
        }
    }

    private bool IsExpired(Entry entry, long now) => _time.GetElapsedTime(entry.Inserted, now) >= _ttl;

    private void EvictLocked(long now)
    {
        Entry? leastRecentlyUsed = null;
        DataKeyId leastRecentlyUsedId = default;
        foreach (KeyValuePair<DataKeyId, Entry> pair in _entries)
        {
            if (IsExpired(pair.Value, now))
            {
                Remove(pair.Key, pair.Value);
            }
            else if (leastRecentlyUsed is null || pair.Value.LastUsed < leastRecentlyUsed.LastUsed)
            {
                leastRecentlyUsed = pair.Value;
                leastRecentlyUsedId = pair.Key;
            }
        }

        if (_entries.Count >= _capacity && leastRecentlyUsed is not null)
        {
            Remove(leastRecentlyUsedId, leastRecentlyUsed);
        }
    }

    private void Remove(DataKeyId id, Entry entry)
    {
        // Only the caller that actually removes this entry disposes its key.
        if (_entries.TryRemove(KeyValuePair.Create(id, entry)))
        {
            entry.Key.Dispose();
        }
    }

    private sealed class Entry(DataKey key, long inserted)
    {
        private long _lastUsed = inserted;

        public DataKey Key { get; } = key;

        public long Inserted { get; } = inserted;

        public long LastUsed
        {
            get => Volatile.Read(ref _lastUsed);
            set => Volatile.Write(ref _lastUsed, value);
        }
    }
}
