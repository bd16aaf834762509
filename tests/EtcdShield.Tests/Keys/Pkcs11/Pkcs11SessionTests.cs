using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Tests.Keys.Pkcs11;

/// <summary>The plaintext data key objects a session makes in the module, against a module that will not destroy them.</summary>
[Collection(FakeCryptokiTests.Name)]
public sealed class Pkcs11SessionTests
{
    [Fact]
    public void A_wrap_whose_data_key_object_the_module_would_not_destroy_fails_so_the_pool_closes_the_session()
    {
        FakeCryptoki.Reset();
        FakeCryptoki.DestroyAnswer = CKR.CKR_DEVICE_ERROR;
        using CryptokiLibrary library = FakeCryptoki.Load("fake:session");
        Pkcs11Session session = new(library, session: 1, slot: 0, moduleGeneration: 0, poolGeneration: 0);

        // Returning normally would give the session back to the pool, the extractable plaintext object still in it.
        var refused = Assert.Throws<Pkcs11Exception>(() => session.Wrap(kekHandle: 7, new byte[32]));

        Assert.Equal("C_DestroyObject", refused.Method);
    }

    [Fact]
    public void An_unwrap_whose_data_key_object_the_module_would_not_destroy_fails_so_the_pool_closes_the_session()
    {
        FakeCryptoki.Reset();
        FakeCryptoki.DestroyAnswer = CKR.CKR_DEVICE_ERROR;
        using CryptokiLibrary library = FakeCryptoki.Load("fake:session");
        Pkcs11Session session = new(library, session: 1, slot: 0, moduleGeneration: 0, poolGeneration: 0);

        var refused = Assert.Throws<Pkcs11Exception>(() => session.Unwrap(kekHandle: 7, new byte[40]));

        Assert.Equal("C_DestroyObject", refused.Method);
    }

    [Fact]
    public void With_a_module_that_destroys_them_wrap_and_unwrap_return_what_the_module_gave()
    {
        FakeCryptoki.Reset();
        using CryptokiLibrary library = FakeCryptoki.Load("fake:session");
        Pkcs11Session session = new(library, session: 1, slot: 0, moduleGeneration: 0, poolGeneration: 0);

        Assert.Equal(Enumerable.Repeat((byte)0xA5, 40), session.Wrap(kekHandle: 7, new byte[32]));
        Assert.Equal(Enumerable.Repeat((byte)0x5A, 32), session.Unwrap(kekHandle: 7, new byte[40]));
    }

    [Fact]
    public void A_data_key_the_module_says_is_longer_than_the_buffer_is_not_returned_cut_to_32_bytes()
    {
        FakeCryptoki.Reset();
        FakeCryptoki.ReportedValueLength = 64;
        using CryptokiLibrary library = FakeCryptoki.Load("fake:session");
        Pkcs11Session session = new(library, session: 1, slot: 0, moduleGeneration: 0, poolGeneration: 0);

        // A 64-byte key is not a data key; its first half must not pass for one.
        Assert.Empty(session.Unwrap(kekHandle: 7, new byte[40]));
    }

    [Fact]
    public void Flags_the_module_does_not_answer_as_one_byte_read_the_cautious_way()
    {
        FakeCryptoki.Reset();
        FakeCryptoki.EndlessFindLimit = 1;
        FakeCryptoki.ReportedValueLength = 2;
        using CryptokiLibrary library = FakeCryptoki.Load("fake:session");
        Pkcs11Session session = new(library, session: 1, slot: 0, moduleGeneration: 0, poolGeneration: 0);

        Pkcs11KeyInfo key = Assert.Single(session.FindSecretKeys(label: null));

        // Not a CK_BBOOL: refused as a KEK (not sensitive, no wrap) and warned about (extractable, public).
        Assert.False(key.Sensitive);
        Assert.True(key.Extractable);
        Assert.False(key.Wrap);
        Assert.False(key.Private);
        Assert.NotNull(key.Problem());
    }
}
