using System.Security.Cryptography;

namespace EtcdShield.Encryption;

/// <summary>
/// A small lock-free pool of <see cref="AesGcm"/> instances for one data key. AesGcm is not thread-safe, and
/// creating one runs the key schedule, so the hot path rents a ready instance instead. Slots are swapped with
/// compare-exchange (the Microsoft.Extensions.ObjectPool scheme) so renting allocates nothing.
/// </summary>
internal sealed class AesGcmPool : IDisposable
{
    public const int TagSize = 16;

    private readonly byte[] _key;
    private readonly AesGcm?[] _slots;
    private AesGcm? _first;
    private int _disposed;

    /// <param name="key">Shared with the owner, which zeroes it after disposing this pool.</param>
    public AesGcmPool(byte[] key)
    {
        _key = key;
        _slots = new AesGcm?[Math.Max(1, (2 * Environment.ProcessorCount) - 1)];
    }

    public AesGcm Rent()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        AesGcm? item = _first;
        if (item is not null && Interlocked.CompareExchange(ref _first, null, item) == item)
        {
            return item;
        }

        AesGcm?[] slots = _slots;
        for (int i = 0; i < slots.Length; i++)
        {
            item = slots[i];
            if (item is not null && Interlocked.CompareExchange(ref slots[i], null, item) == item)
            {
                return item;
            }
        }

        return Create();
    }

    public void Return(AesGcm item)
    {
        if (!TryPublish(item))
        {
            item.Dispose();
            return;
        }

        // Dekker-style hand-off with Dispose: either Dispose's drain sees the item we just published, or we see
        // the disposed flag here and drain it ourselves. Both sides use full fences (interlocked operations).
        if (Volatile.Read(ref _disposed) != 0)
        {
            Drain();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Drain();
        }
    }

    private AesGcm Create()
    {
        AesGcm created = new(_key, TagSize);

        // The owner zeroes the key right after disposing the pool. If the pool was not disposed after we read the
        // key, the key we read was intact; otherwise the instance may hold a zeroed key and must never be used.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _disposed) != 0)
        {
            created.Dispose();
            throw new ObjectDisposedException(nameof(AesGcmPool));
        }

        return created;
    }

    private bool TryPublish(AesGcm item)
    {
        if (_first is null && Interlocked.CompareExchange(ref _first, item, null) is null)
        {
            return true;
        }

        AesGcm?[] slots = _slots;
        for (int i = 0; i < slots.Length; i++)
        {
            if (slots[i] is null && Interlocked.CompareExchange(ref slots[i], item, null) is null)
            {
                return true;
            }
        }

        return false;
    }

    private void Drain()
    {
        Interlocked.Exchange(ref _first, null)?.Dispose();
        AesGcm?[] slots = _slots;
        for (int i = 0; i < slots.Length; i++)
        {
            Interlocked.Exchange(ref slots[i], null)?.Dispose();
        }
    }
}
