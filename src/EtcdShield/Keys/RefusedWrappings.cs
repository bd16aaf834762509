namespace EtcdShield.Keys;

/// <summary>
/// Wrappings the KEK (or the key id check after it) refused, or that name a KEK not found, by their whole wrapping,
/// for a short while. Anyone with
/// write access to etcd can plant a forged wrapping under a key clients read all the time; without this every read
/// of it is another HSM or KMS call. Only refusals about the data are kept, never an unavailable provider, so a
/// genuine wrapping is never refused here for longer than the provider once said no. Bounded in size and age; not
/// thread-safe: the data key manager calls it under its lock.
/// </summary>
internal sealed class RefusedWrappings
{
    private readonly Dictionary<DataKeyWrapping, (Exception Refusal, long Since)> _entries = new(DataKeyWrapping.Comparer.Instance);
    private readonly int _capacity;
    private readonly TimeSpan _ttl;
    private readonly TimeProvider _time;

    public RefusedWrappings(int capacity, TimeSpan ttl, TimeProvider timeProvider)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _capacity = capacity;
        _ttl = ttl;
        _time = timeProvider;
    }

    /// <summary>The refusal <paramref name="wrapping"/> got, if it is recent.</summary>
    public bool TryGet(DataKeyWrapping wrapping, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Exception? refusal)
    {
        if (_entries.TryGetValue(wrapping, out var entry))
        {
            if (_time.GetElapsedTime(entry.Since) < _ttl)
            {
                refusal = entry.Refusal;
                return true;
            }

            _entries.Remove(wrapping);
        }

        refusal = null;
        return false;
    }

    public void Add(DataKeyWrapping wrapping, Exception refusal)
    {
        long now = _time.GetTimestamp();
        if (_entries.Count >= _capacity && !_entries.ContainsKey(wrapping))
        {
            EvictOldest(now);
        }

        _entries[wrapping] = (refusal, now);
    }

    public void Clear() => _entries.Clear();

    private void EvictOldest(long now)
    {
        DataKeyWrapping? oldest = null;
        long oldestSince = long.MaxValue;
        foreach (var (wrapping, entry) in _entries)
        {
            if (_time.GetElapsedTime(entry.Since, now) >= _ttl)
            {
                _entries.Remove(wrapping);
            }
            else if (entry.Since < oldestSince)
            {
                oldest = wrapping;
                oldestSince = entry.Since;
            }
        }

        if (_entries.Count >= _capacity && oldest is not null)
        {
            _entries.Remove(oldest);
        }
    }
}
