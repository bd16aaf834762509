using System.Security.Cryptography;
using System.Text;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.Keys;

/// <summary>The cache finds a data key only by the exact wrapping it was unwrapped from.</summary>
public sealed class DataKeyCacheTests : IDisposable
{
    private static readonly byte[] Dek = RandomNumberGenerator.GetBytes(DataKey.KeySize);
    private static readonly byte[] Wrapped = RandomNumberGenerator.GetBytes(40);

    private readonly DataKeyCache _cache = new(16, TimeSpan.FromHours(1), new FakeTimeProvider());

    public void Dispose() => _cache.Dispose();

    [Fact]
    public void A_key_is_found_by_its_id_kek_id_and_wrapped_bytes_and_by_nothing_less()
    {
        DataKey key = _cache.Add(new DataKey(Dek, "fake:a", Wrapped));
        byte[] otherWrapping = [.. Wrapped];
        otherWrapping[^1] ^= 1;

        Assert.True(_cache.TryGet(key.Id, "fake:a"u8, Wrapped, out DataKey? found));
        Assert.Same(key, found);
        Assert.False(_cache.TryGet(key.Id, "fake:b"u8, Wrapped, out _));
        Assert.False(_cache.TryGet(key.Id, "fake:a"u8, otherWrapping, out _));
        Assert.False(_cache.TryGet(DataKeyId.Derive(RandomNumberGenerator.GetBytes(32)), "fake:a"u8, Wrapped, out _));
    }

    [Fact]
    public void Another_wrapping_of_a_cached_key_gets_its_own_entry_and_leaves_the_first_alone()
    {
        DataKey genuine = _cache.Add(new DataKey(Dek, "kms:real", Wrapped));

        DataKey forged = _cache.Add(new DataKey(Dek, "kms:forged", Wrapped));

        Assert.NotSame(genuine, forged);
        Assert.False(genuine.IsDisposed);
        Assert.True(_cache.TryGet(genuine.Id, Encoding.ASCII.GetBytes("kms:real"), Wrapped, out DataKey? found));
        Assert.Same(genuine, found);
        Assert.True(_cache.TryGet(forged.Id, Encoding.ASCII.GetBytes("kms:forged"), Wrapped, out DataKey? other));
        Assert.Same(forged, other);
    }

    [Fact]
    public void Adding_the_same_wrapping_again_keeps_the_instance_cached_first()
    {
        DataKey first = _cache.Add(new DataKey(Dek, "fake:a", Wrapped));
        var second = new DataKey(Dek, "fake:a", Wrapped);

        Assert.Same(first, _cache.Add(second));
        Assert.True(second.IsDisposed);
        Assert.True(_cache.TryGet(first.Id, "fake:a"u8, Wrapped, out DataKey? found));
        Assert.Same(first, found);
    }
}
