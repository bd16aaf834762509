using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Tests.Keys.Pkcs11;

public sealed class Pkcs11KeyInfoTests
{
    private static readonly Pkcs11KeyInfo Good = new(7, "kek", CKK.CKK_AES, 32, Sensitive: true, Extractable: false, Wrap: true, Unwrap: true, Private: true);

    [Fact]
    public void A_sensitive_non_extractable_aes_256_wrapping_key_is_fine()
    {
        Assert.Null(Good.Problem());
        Assert.Empty(Good.Weaknesses());
    }

    [Theory]
    [InlineData("not sensitive", "CKA_SENSITIVE")]
    [InlineData("no wrap", "CKA_WRAP is false")]
    [InlineData("no unwrap", "CKA_UNWRAP is false")]
    [InlineData("aes-128", "AES-128")]
    [InlineData("des3", "not an AES key")]
    public void Keys_that_must_not_be_keks_are_refused_with_the_reason(string variant, string reason)
    {
        Pkcs11KeyInfo key = variant switch
        {
            "not sensitive" => Good with { Sensitive = false },
            "no wrap" => Good with { Wrap = false },
            "no unwrap" => Good with { Unwrap = false },
            "aes-128" => Good with { ValueLength = 16 },
            _ => Good with { KeyType = CKK.CKK_DES3 },
        };

        Assert.Contains(reason, key.Problem(), StringComparison.Ordinal);
    }

    [Fact]
    public void Extractable_or_public_keys_are_accepted_with_warnings()
    {
        var weaker = Good with { Extractable = true, Private = false };

        Assert.Null(weaker.Problem());
        Assert.Collection(
            weaker.Weaknesses(),
            w => Assert.Contains("CKA_EXTRACTABLE", w, StringComparison.Ordinal),
            w => Assert.Contains("CKA_PRIVATE", w, StringComparison.Ordinal));
    }
}
