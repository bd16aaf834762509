using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Tests.Keys.Pkcs11;

[Collection(FakeCryptokiTests.Name)]
public sealed class CryptokiLibraryTests
{
    [Fact]
    public void No_slots_is_an_answer_even_when_a_token_arrives_right_after_it()
    {
        FakeCryptoki.Reset();
        FakeCryptoki.Slots = [7];
        FakeCryptoki.FirstSlotCount = 0;
        using CryptokiLibrary library = FakeCryptoki.Load("fake:slots");

        // The pool's next try sees the token; this one must not throw what the pool cannot classify.
        Assert.Empty(library.GetSlotsWithToken());
    }

    [Fact]
    public void A_module_that_keeps_finding_objects_is_refused_not_followed_for_ever()
    {
        FakeCryptoki.Reset();
        FakeCryptoki.EndlessFindLimit = 1_000_000;
        using CryptokiLibrary library = FakeCryptoki.Load("fake:find");

        var refused = Assert.Throws<Pkcs11Exception>(() => library.FindObjects(1, new AttributeTemplate().Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)));

        Assert.Equal("C_FindObjects", refused.Method);
        Assert.True(FakeCryptoki.FoundSoFar < FakeCryptoki.EndlessFindLimit);
    }
}
