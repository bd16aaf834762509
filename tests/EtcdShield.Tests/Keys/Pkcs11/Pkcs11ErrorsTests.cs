using EtcdShield.Keys.Pkcs11;
using Net.Pkcs11Interop.Common;

namespace EtcdShield.Tests.Keys.Pkcs11;

public sealed class Pkcs11ErrorsTests
{
    [Theory]
    [InlineData(CKR.CKR_PIN_INCORRECT, "--pkcs11-pin-file")]
    [InlineData(CKR.CKR_PIN_LOCKED, "security officer")]
    [InlineData(CKR.CKR_TOKEN_NOT_PRESENT, "not present")]
    [InlineData(CKR.CKR_DEVICE_REMOVED, "reconnects")]
    [InlineData(CKR.CKR_KEY_HANDLE_INVALID, "deleted")]
    [InlineData(CKR.CKR_SESSION_HANDLE_INVALID, "opens a new one")]
    [InlineData(CKR.CKR_KEY_FUNCTION_NOT_PERMITTED, "CKA_WRAP")]
    [InlineData(CKR.CKR_MECHANISM_INVALID, "CKM_AES_KEY_WRAP_PAD")]
    [InlineData(CKR.CKR_SLOT_ID_INVALID, "--pkcs11-slot")]
    [InlineData(CKR.CKR_VENDOR_DEFINED, "CKR_VENDOR_DEFINED")]
    public void Messages_name_the_code_and_what_to_do(CKR rv, string advice)
    {
        string message = Pkcs11Errors.Describe(rv);

        Assert.Contains(advice, message, StringComparison.Ordinal);
        Assert.Contains(rv.ToString(), message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(CKR.CKR_SESSION_HANDLE_INVALID)]
    [InlineData(CKR.CKR_SESSION_CLOSED)]
    [InlineData(CKR.CKR_DEVICE_REMOVED)]
    [InlineData(CKR.CKR_DEVICE_ERROR)]
    [InlineData(CKR.CKR_TOKEN_NOT_PRESENT)]
    [InlineData(CKR.CKR_CRYPTOKI_NOT_INITIALIZED)]
    [InlineData(CKR.CKR_USER_NOT_LOGGED_IN)]
    [InlineData(CKR.CKR_GENERAL_ERROR)]
    public void A_lost_token_or_session_makes_the_pool_reconnect(CKR rv)
    {
        Assert.True(Pkcs11Errors.IsTokenLost(rv));
        Assert.False(Pkcs11Errors.IsPinRefused(rv));
        Assert.False(Pkcs11Errors.IsInvalidWrappedKey(rv));
    }

    [Theory]
    [InlineData(CKR.CKR_PIN_INCORRECT)]
    [InlineData(CKR.CKR_PIN_LOCKED)]
    [InlineData(CKR.CKR_PIN_EXPIRED)]
    public void A_refused_pin_is_never_retried_as_a_lost_token(CKR rv)
    {
        Assert.True(Pkcs11Errors.IsPinRefused(rv));
        Assert.False(Pkcs11Errors.IsTokenLost(rv));
    }

    [Theory]
    [InlineData(CKR.CKR_WRAPPED_KEY_INVALID)]
    [InlineData(CKR.CKR_WRAPPED_KEY_LEN_RANGE)]
    [InlineData(CKR.CKR_ENCRYPTED_DATA_INVALID)]
    public void Refused_wrapped_bytes_are_the_datas_fault_not_the_tokens(CKR rv)
    {
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
