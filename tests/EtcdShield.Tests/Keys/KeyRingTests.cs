using EtcdShield.Keys;

namespace EtcdShield.Tests.Keys;

public sealed class KeyRingTests
{
    [Fact]
    public void Finds_the_current_and_retired_keks_by_id()
    {
        using var current = new FakeKeyEncryptionKey("kms:new");
        using var retired = new FakeKeyEncryptionKey("kms:old");

        var ring = new KeyRing(current, retired);

        Assert.Same(current, ring.Current);
        Assert.True(ring.TryGet("kms:old", out var found));
        Assert.Same(retired, found);
        Assert.True(ring.TryGet("kms:new", out var newest));
        Assert.Same(current, newest);
        Assert.False(ring.TryGet("kms:gone", out _));
    }

    [Theory]
    [InlineData("file:0011223344556677")]
    [InlineData("pkcs11:kek")]
    [InlineData("kms:projects/p/keys/k")]
    public void A_ring_of_file_keks_knows_only_their_own_ids(string kekId)
    {
        using var current = FileKeyEncryptionKey.FromKey(new byte[32]);
        using var retired = FileKeyEncryptionKey.FromKey(Enumerable.Repeat((byte)1, 32).ToArray());

        var ring = new KeyRing(current, retired);

        Assert.False(ring.TryGet(kekId, out _));
        Assert.True(ring.TryGet(retired.Id, out _));
    }

    [Fact]
    public void Rejects_two_different_keks_with_one_id()
    {
        using var a = new FakeKeyEncryptionKey("kms:same");
        using var b = new FakeKeyEncryptionKey("kms:same");

        var ex = Assert.Throws<ArgumentException>(() => new KeyRing(a, b));

        Assert.Contains("kms:same", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("pkcs11:my label")]
    [InlineData("kms:\u00e9")]
    public void Rejects_kek_ids_that_cannot_be_written_into_envelopes(string id)
    {
        using var kek = new FakeKeyEncryptionKey(id);

        Assert.Throws<ArgumentException>(() => new KeyRing(kek));
    }

    [Fact]
    public void Rejects_kek_ids_longer_than_255_characters()
    {
        using var kek = new FakeKeyEncryptionKey("kms:" + new string('k', 252));

        Assert.Throws<ArgumentException>(() => new KeyRing(kek));
    }
}
