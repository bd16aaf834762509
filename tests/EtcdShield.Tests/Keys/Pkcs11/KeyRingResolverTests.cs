using System.Diagnostics.CodeAnalysis;
using EtcdShield.Encryption;
using EtcdShield.Keys;

namespace EtcdShield.Tests.Keys.Pkcs11;

public sealed class KeyRingResolverTests
{
    [Fact]
    public void Ids_the_ring_does_not_hold_are_asked_of_its_resolver()
    {
        using var current = new FakeKeyEncryptionKey("pkcs11:kek#2");
        using var resolved = new FakeKeyEncryptionKey("pkcs11:other");
        var resolver = new Resolver(resolved);
        var ring = new KeyRing(current) { Resolver = resolver };

        Assert.True(ring.TryGet("pkcs11:kek#2", out var own));
        Assert.Same(current, own);
        Assert.True(ring.TryGet("pkcs11:other", out var found));
        Assert.Same(resolved, found);
        Assert.False(ring.TryGet("kms:elsewhere", out _));
        Assert.Equal(["pkcs11:other", "kms:elsewhere"], resolver.Asked);
    }

    private sealed class Resolver(IKeyEncryptionKey kek) : IKeyEncryptionKeyResolver
    {
        public List<string> Asked { get; } = [];

        public bool TryResolve(string kekId, [NotNullWhen(true)] out IKeyEncryptionKey? found)
        {
            Asked.Add(kekId);
            found = kekId == kek.Id ? kek : null;
            return found is not null;
        }
    }
}
