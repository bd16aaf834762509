namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// What PKCS#11 return codes mean for an operator, and what the provider does about them. Messages name the code
/// (so it can be looked up in the HSM's manual) and the flag or action that fixes it; they never carry key bytes.
/// </summary>
internal static class Pkcs11Errors
{
    private const ulong VendorDefined = 0x80000000;

    public static string Describe(CKR rv) => rv switch
    {
        CKR.CKR_PIN_INCORRECT =>
            "the token refused the PIN in --pkcs11-pin-file (CKR_PIN_INCORRECT); fix the file. Careful: repeated wrong PINs lock the token",
        CKR.CKR_PIN_LOCKED =>
            "the token's user PIN is locked after too many wrong tries (CKR_PIN_LOCKED); the security officer must reset it",
        CKR.CKR_PIN_EXPIRED =>
            "the token's user PIN has expired (CKR_PIN_EXPIRED); set a new one and update --pkcs11-pin-file",
        CKR.CKR_PIN_LEN_RANGE or CKR.CKR_PIN_INVALID =>
            $"the PIN in --pkcs11-pin-file is not a valid PIN for this token ({rv})",
        CKR.CKR_TOKEN_NOT_PRESENT =>
            "the token is not present in its slot (CKR_TOKEN_NOT_PRESENT); reinsert or reconnect it",
        CKR.CKR_DEVICE_REMOVED =>
            "the HSM was removed or disconnected (CKR_DEVICE_REMOVED); EtcdShield reconnects when it is back",
        CKR.CKR_DEVICE_ERROR =>
            "the HSM reported a device error (CKR_DEVICE_ERROR); check the HSM and its client",
        CKR.CKR_DEVICE_MEMORY or CKR.CKR_HOST_MEMORY =>
            $"the HSM or its client ran out of memory ({rv})",
        CKR.CKR_TOKEN_NOT_RECOGNIZED =>
            "the module does not recognize the token (CKR_TOKEN_NOT_RECOGNIZED)",
        CKR.CKR_SESSION_HANDLE_INVALID or CKR.CKR_SESSION_CLOSED =>
            $"the HSM session was closed under us ({rv}), e.g. by an HSM restart; EtcdShield opens a new one",
        CKR.CKR_SESSION_COUNT =>
            "the HSM has no free sessions (CKR_SESSION_COUNT); other applications may hold them all",
        CKR.CKR_CRYPTOKI_NOT_INITIALIZED =>
            "the PKCS#11 module is not initialized (CKR_CRYPTOKI_NOT_INITIALIZED); EtcdShield initializes it again",
        CKR.CKR_CRYPTOKI_ALREADY_INITIALIZED =>
            "something else in this process initialized the PKCS#11 module already (CKR_CRYPTOKI_ALREADY_INITIALIZED); is it loaded under two paths?",
        CKR.CKR_USER_NOT_LOGGED_IN =>
            "the session is not logged in (CKR_USER_NOT_LOGGED_IN); EtcdShield logs in again",
        CKR.CKR_USER_ANOTHER_ALREADY_LOGGED_IN or CKR.CKR_USER_TOO_MANY_TYPES =>
            $"another user is logged in to the token in this process ({rv})",
        CKR.CKR_SLOT_ID_INVALID =>
            "no such slot (CKR_SLOT_ID_INVALID); check --pkcs11-slot, or use --pkcs11-token-label, which survives slot renumbering",
        CKR.CKR_KEY_HANDLE_INVALID or CKR.CKR_WRAPPING_KEY_HANDLE_INVALID or CKR.CKR_UNWRAPPING_KEY_HANDLE_INVALID or CKR.CKR_OBJECT_HANDLE_INVALID =>
            $"the key-encryption key's handle is no longer valid ({rv}); the key was deleted or the token reloaded",
        CKR.CKR_KEY_FUNCTION_NOT_PERMITTED =>
            "the key-encryption key may not wrap or unwrap (CKR_KEY_FUNCTION_NOT_PERMITTED): it needs CKA_WRAP and CKA_UNWRAP",
        CKR.CKR_KEY_TYPE_INCONSISTENT or CKR.CKR_WRAPPING_KEY_TYPE_INCONSISTENT or CKR.CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT =>
            $"the key-encryption key is not an AES key usable with AES key wrap ({rv})",
        CKR.CKR_MECHANISM_INVALID or CKR.CKR_MECHANISM_PARAM_INVALID =>
            $"the HSM does not support AES key wrap with padding, CKM_AES_KEY_WRAP_PAD ({rv})",
        CKR.CKR_WRAPPED_KEY_INVALID or CKR.CKR_WRAPPED_KEY_LEN_RANGE or CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE =>
            $"the wrapped data key is not valid under this key-encryption key ({rv})",
        CKR.CKR_TEMPLATE_INCOMPLETE or CKR.CKR_TEMPLATE_INCONSISTENT or CKR.CKR_ATTRIBUTE_VALUE_INVALID or CKR.CKR_ATTRIBUTE_TYPE_INVALID =>
            $"the HSM refused the attributes of a data key object ({rv})",
        CKR.CKR_ATTRIBUTE_SENSITIVE =>
            "the HSM refused to reveal a key value (CKR_ATTRIBUTE_SENSITIVE)",
        CKR.CKR_TOKEN_WRITE_PROTECTED =>
            "the token is write-protected (CKR_TOKEN_WRITE_PROTECTED)",
        CKR.CKR_FUNCTION_NOT_SUPPORTED =>
            "the PKCS#11 module does not implement a function EtcdShield needs (CKR_FUNCTION_NOT_SUPPORTED)",
        CKR.CKR_GENERAL_ERROR or CKR.CKR_FUNCTION_FAILED =>
            $"the HSM failed the operation ({rv}); if it persists, check the HSM and its token storage",
        _ => $"the HSM returned {Name(rv)}",
    };

    /// <summary>The standard's name of <paramref name="rv"/>, or its number (vendor codes have no standard name).</summary>
    public static string Name(CKR rv) => Enum.IsDefined(rv)
        ? rv.ToString()
        : (ulong)rv >= VendorDefined ? $"CKR_VENDOR_DEFINED+0x{(ulong)rv - VendorDefined:X}" : $"0x{(ulong)rv:X8}";

    /// <summary>
    /// The token, the session or the module is gone or broken: drop every session and open new ones (reinitializing
    /// the module if the token cannot be found) on the next call.
    /// </summary>
    public static bool IsTokenLost(CKR rv) => rv is
        CKR.CKR_SESSION_HANDLE_INVALID or CKR.CKR_SESSION_CLOSED or
        CKR.CKR_DEVICE_REMOVED or CKR.CKR_DEVICE_ERROR or CKR.CKR_TOKEN_NOT_PRESENT or CKR.CKR_TOKEN_NOT_RECOGNIZED or
        CKR.CKR_CRYPTOKI_NOT_INITIALIZED or CKR.CKR_USER_NOT_LOGGED_IN or CKR.CKR_SLOT_ID_INVALID or
        CKR.CKR_GENERAL_ERROR or CKR.CKR_FUNCTION_FAILED or CKR.CKR_DEVICE_MEMORY;

    /// <summary>A cached key handle went stale: look the label up again.</summary>
    public static bool IsKeyHandleInvalid(CKR rv) => rv is
        CKR.CKR_KEY_HANDLE_INVALID or CKR.CKR_WRAPPING_KEY_HANDLE_INVALID or CKR.CKR_UNWRAPPING_KEY_HANDLE_INVALID or
        CKR.CKR_OBJECT_HANDLE_INVALID;

    /// <summary>The wrapped bytes themselves were refused: the stored value is corrupt or came from another key.</summary>
    public static bool IsInvalidWrappedKey(CKR rv) => rv is
        CKR.CKR_WRAPPED_KEY_INVALID or CKR.CKR_WRAPPED_KEY_LEN_RANGE or
        CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE;

    /// <summary>
    /// Some modules (SoftHSM2 among them) report a failed integrity check of the wrapped bytes as a generic failure;
    /// whether it is the data or the device is decided by probing the token afterwards.
    /// </summary>
    public static bool MayBeInvalidWrappedKey(CKR rv) => rv is CKR.CKR_GENERAL_ERROR or CKR.CKR_FUNCTION_FAILED;

    /// <summary>The PIN was refused: never try the same PIN again, since every try counts towards locking the token.</summary>
    public static bool IsPinRefused(CKR rv) => rv is
        CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_LOCKED or CKR.CKR_PIN_EXPIRED or CKR.CKR_PIN_LEN_RANGE or CKR.CKR_PIN_INVALID;
}
