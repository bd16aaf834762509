using EtcdShield.Keys;

namespace EtcdShield.Tests.Keys;

public sealed class DataKeyOptionsTests
{
    [Fact]
    public void Defaults_match_the_design()
    {
        var options = DataKeyOptions.Default;

        Assert.Equal(1L << 30, options.MaxWritesPerKey);
        Assert.Equal(TimeSpan.FromHours(24), options.MaxKeyAge);
        Assert.Equal(4096, options.DecryptionCacheSize);
        Assert.Equal(TimeSpan.FromHours(1), options.DecryptionCacheTtl);
    }

    [Fact]
    public void The_write_limit_cannot_exceed_two_to_the_32()
    {
        Assert.Equal(1L << 32, new DataKeyOptions(maxWritesPerKey: 1L << 32).MaxWritesPerKey);

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new DataKeyOptions(maxWritesPerKey: (1L << 32) + 1));

        Assert.Contains("2^32", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new DataKeyOptions(maxWritesPerKey: 0));
    }

    [Fact]
    public void Rejects_non_positive_durations_and_cache_sizes()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DataKeyOptions(maxKeyAge: TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DataKeyOptions(maxKeyAge: TimeSpan.FromDays(400)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DataKeyOptions(decryptionCacheTtl: TimeSpan.FromSeconds(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DataKeyOptions(decryptionCacheSize: 0));
    }
}
