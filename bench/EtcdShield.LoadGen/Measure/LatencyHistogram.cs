using System.Numerics;

namespace EtcdShield.LoadGen.Measure;

/// <summary>
/// A log-linear latency histogram in nanoseconds, in the manner of HdrHistogram: every power of two is split into
/// 128 equal buckets, so any recorded value is known to within 1/128 (0.8 %) from 1 ns to hours, in a fixed
/// 42 KB array. Recording is one array increment and never allocates, so a load loop can record every operation.
/// Not thread-safe: each client owns one and they are merged afterwards.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int SubBucketBits = 7;
    private const int SubBuckets = 1 << SubBucketBits;

    // Values below 2^7 are their own bucket; each of the remaining 57 powers of two (up to 2^63) gets 128.
    private const int BucketCount = SubBuckets + ((63 - SubBucketBits + 1) * SubBuckets);

    private readonly long[] _counts = new long[BucketCount];

    public long Count { get; private set; }

    public long MinNanoseconds { get; private set; } = long.MaxValue;

    public long MaxNanoseconds { get; private set; }

    public double SumNanoseconds { get; private set; }

    public double MeanNanoseconds => Count == 0 ? 0 : SumNanoseconds / Count;

    public void Record(long nanoseconds)
    {
        if (nanoseconds < 0)
        {
            nanoseconds = 0;
        }

        _counts[IndexOf(nanoseconds)]++;
        Count++;
        SumNanoseconds += nanoseconds;
        if (nanoseconds < MinNanoseconds)
        {
            MinNanoseconds = nanoseconds;
        }

        if (nanoseconds > MaxNanoseconds)
        {
            MaxNanoseconds = nanoseconds;
        }
    }

    public void Add(LatencyHistogram other)
    {
        ArgumentNullException.ThrowIfNull(other);
        for (var i = 0; i < BucketCount; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
        SumNanoseconds += other.SumNanoseconds;
        MinNanoseconds = Math.Min(MinNanoseconds, other.MinNanoseconds);
        MaxNanoseconds = Math.Max(MaxNanoseconds, other.MaxNanoseconds);
    }

    /// <summary>The value at <paramref name="percentile"/> (0..100): the middle of the bucket holding that rank, capped at the max.</summary>
    public long ValueAtPercentile(double percentile)
    {
        if (Count == 0)
        {
            return 0;
        }

        // The rank of the sample that percentile names, counted from 1, as HdrHistogram does.
        var rank = Math.Max(1, (long)Math.Ceiling(percentile / 100.0 * Count));
        long seen = 0;
        for (var i = 0; i < BucketCount; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(MaxNanoseconds, Math.Max(MinNanoseconds, MidpointOf(i)));
            }
        }

        return MaxNanoseconds;
    }

    internal static int IndexOf(long value)
    {
        if (value < SubBuckets)
        {
            return (int)value;
        }

        var exponent = 63 - BitOperations.LeadingZeroCount((ulong)value);
        var shift = exponent - SubBucketBits;
        var sub = (int)(value >> shift) - SubBuckets;
        return SubBuckets + (shift * SubBuckets) + sub;
    }

    internal static long LowestOf(int index)
    {
        if (index < SubBuckets)
        {
            return index;
        }

        var shift = (index - SubBuckets) / SubBuckets;
        var sub = (index - SubBuckets) % SubBuckets;
        return (long)(SubBuckets + sub) << shift;
    }

    internal static long MidpointOf(int index)
    {
        if (index < SubBuckets)
        {
            return index;
        }

        var shift = (index - SubBuckets) / SubBuckets;
        return LowestOf(index) + ((1L << shift) / 2);
    }
}
