namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>Polls a real condition until it holds or a deadline passes, for state that no event announces.</summary>
internal static class Eventually
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    /// <returns>The value that satisfied <paramref name="condition"/>.</returns>
    public static async Task<T> HoldsAsync<T>(Func<Task<T>> probe, Func<T, bool> condition, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (true)
        {
            var value = await probe();
            if (condition(value))
            {
                return value;
            }

            if (DateTimeOffset.UtcNow >= deadline)
            {
                var shown = value is System.Collections.IEnumerable items and not string
                    ? "[" + string.Join(", ", items.Cast<object?>()) + "]"
                    : value?.ToString();
                throw new TimeoutException($"The condition did not hold within {timeout.TotalSeconds:0.#} s; last seen: {shown}");
            }

            await Task.Delay(Interval, cancellationToken);
        }
    }
}
