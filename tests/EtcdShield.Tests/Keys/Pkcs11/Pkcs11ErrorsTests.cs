using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Tests.Keys.Pkcs11;

public sealed class Pkcs11ErrorsTests
{
    [Theory]
    [InlineData((ulong)CKR.CKR_PIN_INCORRECT, "--pkcs11-pin-file")]
    [InlineData((ulong)CKR.CKR_PIN_LOCKED, "security officer")]
    [InlineData((ulong)CKR.CKR_TOKEN_NOT_PRESENT, "not present")]
    [InlineData((ulong)CKR.CKR_DEVICE_REMOVED, "reconnects")]
    [InlineData((ulong)CKR.CKR_KEY_HANDLE_INVALID, "deleted")]
    [InlineData((ulong)CKR.CKR_SESSION_HANDLE_INVALID, "opens a new one")]
    [InlineData((ulong)CKR.CKR_KEY_FUNCTION_NOT_PERMITTED, "CKA_WRAP")]
    [InlineData((ulong)CKR.CKR_MECHANISM_INVALID, "CKM_AES_KEY_WRAP_PAD")]
    [InlineData((ulong)CKR.CKR_SLOT_ID_INVALID, "--pkcs11-slot")]
    [InlineData(0x80000042UL, "CKR_VENDOR_DEFINED+0x42")]
    [InlineData(0x1234UL, "0x00001234")]
    public void Messages_name_the_code_and_what_to_do(ulong code, string advice)
    {
        var rv = (CKR)code;
        string message = Pkcs11Errors.Describe(rv);

        Assert.Contains(advice, message, StringComparison.Ordinal);
        Assert.Contains(Pkcs11Errors.Name(rv), message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData((ulong)CKR.CKR_SESSION_HANDLE_INVALID)]
    [InlineData((ulong)CKR.CKR_SESSION_CLOSED)]
    [InlineData((ulong)CKR.CKR_DEVICE_REMOVED)]
    [InlineData((ulong)CKR.CKR_DEVICE_ERROR)]
    [InlineData((ulong)CKR.CKR_TOKEN_NOT_PRESENT)]
    [InlineData((ulong)CKR.CKR_CRYPTOKI_NOT_INITIALIZED)]
    [InlineData((ulong)CKR.CKR_USER_NOT_LOGGED_IN)]
    [InlineData((ulong)CKR.CKR_GENERAL_ERROR)]
    public void A_lost_token_or_session_makes_the_pool_reconnect(ulong code)
    {
        var rv = (CKR)code;
        Assert.True(Pkcs11Errors.IsTokenLost(rv));
        Assert.False(Pkcs11Errors.IsPinRefused(rv));
        Assert.False(Pkcs11Errors.IsInvalidWrappedKey(rv));
    }

    [Theory]
    [InlineData((ulong)CKR.CKR_PIN_INCORRECT)]
    [InlineData((ulong)CKR.CKR_PIN_LOCKED)]
    [InlineData((ulong)CKR.CKR_PIN_EXPIRED)]
    public void A_refused_pin_is_never_retried_as_a_lost_token(ulong code)
    {
        var rv = (CKR)code;
        Assert.True(Pkcs11Errors.IsPinRefused(rv));
        Assert.False(Pkcs11Errors.IsTokenLost(rv));
    }

    [Theory]
    [InlineData((ulong)CKR.CKR_WRAPPED_KEY_INVALID)]
    [InlineData((ulong)CKR.CKR_WRAPPED_KEY_LEN_RANGE)]
    [InlineData((ulong)CKR.CKR_ENCRYPTED_DATA_INVALID)]
    public void Refused_wrapped_bytes_are_the_datas_fault_not_the_tokens(ulong code)
    {
        var rv = (CKR)code;
        Assert.True(Pkcs11Errors.IsInvalidWrappedKey(rv));
        Assert.False(Pkcs11Errors.IsTokenLost(rv));
        Assert.False(Pkcs11Errors.IsKeyHandleInvalid(rv));
    }

    [Fact]
    public void Stale_key_handles_are_looked_up_again_rather_than_reconnecting()
    {
        Assert.True(Pkcs11Errors.IsKeyHandleInvalid(CKR.CKR_WRAPPING_KEY_HANDLE_INVALID));
        Assert.True(Pkcs11Errors.IsKeyHandleInvalid(CKR.CKR_UNWRAPPING_KEY_HANDLE_INVALID));
        Assert.False(Pkcs11Errors.IsTokenLost(CKR.CKR_KEY_HANDLE_INVALID));
    }
}
