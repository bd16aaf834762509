namespace EtcdShield.Watches;

/// <summary>
/// The bytes all watch streams' queues and all shared watches' histories may hold together
/// (<c>--watch-buffer-bytes</c>). A charge that would pass the limit is refused; the caller then demotes a watch or
/// trims a history instead of holding more.
/// </summary>
internal sealed class WatchBudget
{
    private readonly long _limit;
    private long _used;

    public WatchBudget(long limit) => _limit = limit;

    public long Used => Interlocked.Read(ref _used);

    public bool TryCharge(long bytes)
    {
        if (Interlocked.Add(ref _used, bytes) <= _limit)
        {
            return true;
        }

        Interlocked.Add(ref _used, -bytes);
        return false;
    }

    /// <summary>Charges what must be held whatever the budget (a created or cancelled answer, a lone response).</summary>
    public void Force(long bytes) => Interlocked.Add(ref _used, bytes);

    public void Release(long bytes) => Interlocked.Add(ref _used, -bytes);
}
