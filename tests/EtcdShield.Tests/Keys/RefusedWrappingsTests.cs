using EtcdShield.Encryption;
using EtcdShield.Keys;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.Keys;

public sealed class RefusedWrappingsTests
{
    private readonly FakeTimeProvider _time = new();

    private static DataKeyWrapping Wrapping(byte last) =>
        new(DataKeyId.Derive(new byte[DataKey.KeySize]), "fake:current"u8, [1, 2, 3, last]);

    [Fact]
    public void Keeps_a_refusal_for_its_age_by_the_whole_wrapping()
    {
        var refused = new RefusedWrappings(4, TimeSpan.FromMinutes(1), _time);
        var refusal = new KeyUnwrapException("no");

        refused.Add(Wrapping(0), refusal);

        Assert.True(refused.TryGet(Wrapping(0), out Exception? kept));
        Assert.Same(refusal, kept);
        Assert.False(refused.TryGet(Wrapping(1), out _));
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.False(refused.TryGet(Wrapping(0), out _));
    }

    [Fact]
    public void Is_bounded_and_evicts_the_oldest()
    {
        var refused = new RefusedWrappings(2, TimeSpan.FromMinutes(1), _time);

        refused.Add(Wrapping(0), new KeyUnwrapException("no"));
        _time.Advance(TimeSpan.FromSeconds(1));
        refused.Add(Wrapping(1), new KeyUnwrapException("no"));
        _time.Advance(TimeSpan.FromSeconds(1));
        refused.Add(Wrapping(2), new KeyUnwrapException("no"));

        Assert.False(refused.TryGet(Wrapping(0), out _));
        Assert.True(refused.TryGet(Wrapping(1), out _));
        Assert.True(refused.TryGet(Wrapping(2), out _));
    }
}
