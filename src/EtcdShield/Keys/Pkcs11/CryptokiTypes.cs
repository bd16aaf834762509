using System.Runtime.InteropServices;

namespace EtcdShield.Keys.Pkcs11;

// The PKCS#11 (Cryptoki) v2.40 names and numbers the proxy uses, for 64-bit Unix, where CK_ULONG is 64 bits and
// structures are naturally aligned (pkcs11.h). The enum members keep the standard's spelling: error messages print
// them, and an operator looks them up in the HSM's manual under those names.
#pragma warning disable CA1707, CA1712 // The standard's names: underscores, and the type's name as their prefix.
#pragma warning disable CA1069 // Not an issue here: the standard gives no two of these names one value.

/// <summary>CK_RV: what a Cryptoki function returned; every code of v2.40, so messages name any the module returns.</summary>
internal enum CKR : ulong
{
    CKR_OK = 0x0,
    CKR_CANCEL = 0x1,
    CKR_HOST_MEMORY = 0x2,
    CKR_SLOT_ID_INVALID = 0x3,
    CKR_GENERAL_ERROR = 0x5,
    CKR_FUNCTION_FAILED = 0x6,
    CKR_ARGUMENTS_BAD = 0x7,
    CKR_NO_EVENT = 0x8,
    CKR_NEED_TO_CREATE_THREADS = 0x9,
    CKR_CANT_LOCK = 0xA,
    CKR_ATTRIBUTE_READ_ONLY = 0x10,
    CKR_ATTRIBUTE_SENSITIVE = 0x11,
    CKR_ATTRIBUTE_TYPE_INVALID = 0x12,
    CKR_ATTRIBUTE_VALUE_INVALID = 0x13,
    CKR_ACTION_PROHIBITED = 0x1B,
    CKR_DATA_INVALID = 0x20,
    CKR_DATA_LEN_RANGE = 0x21,
    CKR_DEVICE_ERROR = 0x30,
    CKR_DEVICE_MEMORY = 0x31,
    CKR_DEVICE_REMOVED = 0x32,
    CKR_ENCRYPTED_DATA_INVALID = 0x40,
    CKR_ENCRYPTED_DATA_LEN_RANGE = 0x41,
    CKR_FUNCTION_CANCELED = 0x50,
    CKR_FUNCTION_NOT_PARALLEL = 0x51,
    CKR_FUNCTION_NOT_SUPPORTED = 0x54,
    CKR_KEY_HANDLE_INVALID = 0x60,
    CKR_KEY_SIZE_RANGE = 0x62,
    CKR_KEY_TYPE_INCONSISTENT = 0x63,
    CKR_KEY_NOT_NEEDED = 0x64,
    CKR_KEY_CHANGED = 0x65,
    CKR_KEY_NEEDED = 0x66,
    CKR_KEY_INDIGESTIBLE = 0x67,
    CKR_KEY_FUNCTION_NOT_PERMITTED = 0x68,
    CKR_KEY_NOT_WRAPPABLE = 0x69,
    CKR_KEY_UNEXTRACTABLE = 0x6A,
    CKR_MECHANISM_INVALID = 0x70,
    CKR_MECHANISM_PARAM_INVALID = 0x71,
    CKR_OBJECT_HANDLE_INVALID = 0x82,
    CKR_OPERATION_ACTIVE = 0x90,
    CKR_OPERATION_NOT_INITIALIZED = 0x91,
    CKR_PIN_INCORRECT = 0xA0,
    CKR_PIN_INVALID = 0xA1,
    CKR_PIN_LEN_RANGE = 0xA2,
    CKR_PIN_EXPIRED = 0xA3,
    CKR_PIN_LOCKED = 0xA4,
    CKR_SESSION_CLOSED = 0xB0,
    CKR_SESSION_COUNT = 0xB1,
    CKR_SESSION_HANDLE_INVALID = 0xB3,
    CKR_SESSION_PARALLEL_NOT_SUPPORTED = 0xB4,
    CKR_SESSION_READ_ONLY = 0xB5,
    CKR_SESSION_EXISTS = 0xB6,
    CKR_SESSION_READ_ONLY_EXISTS = 0xB7,
    CKR_SESSION_READ_WRITE_SO_EXISTS = 0xB8,
    CKR_SIGNATURE_INVALID = 0xC0,
    CKR_SIGNATURE_LEN_RANGE = 0xC1,
    CKR_TEMPLATE_INCOMPLETE = 0xD0,
    CKR_TEMPLATE_INCONSISTENT = 0xD1,
    CKR_TOKEN_NOT_PRESENT = 0xE0,
    CKR_TOKEN_NOT_RECOGNIZED = 0xE1,
    CKR_TOKEN_WRITE_PROTECTED = 0xE2,
    CKR_UNWRAPPING_KEY_HANDLE_INVALID = 0xF0,
    CKR_UNWRAPPING_KEY_SIZE_RANGE = 0xF1,
    CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT = 0xF2,
    CKR_USER_ALREADY_LOGGED_IN = 0x100,
    CKR_USER_NOT_LOGGED_IN = 0x101,
    CKR_USER_PIN_NOT_INITIALIZED = 0x102,
    CKR_USER_TYPE_INVALID = 0x103,
    CKR_USER_ANOTHER_ALREADY_LOGGED_IN = 0x104,
    CKR_USER_TOO_MANY_TYPES = 0x105,
    CKR_WRAPPED_KEY_INVALID = 0x110,
    CKR_WRAPPED_KEY_LEN_RANGE = 0x112,
    CKR_WRAPPING_KEY_HANDLE_INVALID = 0x113,
    CKR_WRAPPING_KEY_SIZE_RANGE = 0x114,
    CKR_WRAPPING_KEY_TYPE_INCONSISTENT = 0x115,
    CKR_RANDOM_SEED_NOT_SUPPORTED = 0x120,
    CKR_RANDOM_NO_RNG = 0x121,
    CKR_DOMAIN_PARAMS_INVALID = 0x130,
    CKR_CURVE_NOT_SUPPORTED = 0x140,
    CKR_BUFFER_TOO_SMALL = 0x150,
    CKR_SAVED_STATE_INVALID = 0x160,
    CKR_INFORMATION_SENSITIVE = 0x170,
    CKR_STATE_UNSAVEABLE = 0x180,
    CKR_CRYPTOKI_NOT_INITIALIZED = 0x190,
    CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191,
    CKR_MUTEX_BAD = 0x1A0,
    CKR_MUTEX_NOT_LOCKED = 0x1A1,
    CKR_NEW_PIN_MODE = 0x1B0,
    CKR_NEXT_OTP = 0x1B1,
    // v2.40's numbers; p11-kit's pkcs11.h has 0x1C0..0x1C4 for these five.
    CKR_EXCEEDED_MAX_ITERATIONS = 0x1B5,
    CKR_FIPS_SELF_TEST_FAILED = 0x1B6,
    CKR_LIBRARY_LOAD_FAILED = 0x1B7,
    CKR_PIN_TOO_WEAK = 0x1B8,
    CKR_PUBLIC_KEY_INVALID = 0x1B9,
    CKR_FUNCTION_REJECTED = 0x200,
}

/// <summary>CK_ATTRIBUTE_TYPE.</summary>
internal enum CKA : ulong
{
    CKA_CLASS = 0x0,
    CKA_TOKEN = 0x1,
    CKA_PRIVATE = 0x2,
    CKA_LABEL = 0x3,
    CKA_VALUE = 0x11,
    CKA_KEY_TYPE = 0x100,
    CKA_SENSITIVE = 0x103,
    CKA_ENCRYPT = 0x104,
    CKA_DECRYPT = 0x105,
    CKA_WRAP = 0x106,
    CKA_UNWRAP = 0x107,
    CKA_SIGN = 0x108,
    CKA_VERIFY = 0x10A,
    CKA_DERIVE = 0x10C,
    CKA_VALUE_LEN = 0x161,
    CKA_EXTRACTABLE = 0x162,
    CKA_MODIFIABLE = 0x170,
}

/// <summary>CK_OBJECT_CLASS.</summary>
internal enum CKO : ulong
{
    CKO_DATA = 0x0,
    CKO_CERTIFICATE = 0x1,
    CKO_PUBLIC_KEY = 0x2,
    CKO_PRIVATE_KEY = 0x3,
    CKO_SECRET_KEY = 0x4,
}

/// <summary>CK_KEY_TYPE; the ones besides AES are named so a wrong key's type reads as a name.</summary>
internal enum CKK : ulong
{
    CKK_RSA = 0x0,
    CKK_DSA = 0x1,
    CKK_DH = 0x2,
    CKK_EC = 0x3,
    CKK_GENERIC_SECRET = 0x10,
    CKK_RC2 = 0x11,
    CKK_RC4 = 0x12,
    CKK_DES = 0x13,
    CKK_DES2 = 0x14,
    CKK_DES3 = 0x15,
    CKK_AES = 0x1F,
}

/// <summary>CK_MECHANISM_TYPE.</summary>
internal enum CKM : ulong
{
    CKM_AES_KEY_GEN = 0x1080,
    CKM_AES_KEY_WRAP = 0x2109,
    CKM_AES_KEY_WRAP_PAD = 0x210A,
}

/// <summary>CK_USER_TYPE.</summary>
internal enum CKU : ulong
{
    CKU_SO = 0x0,
    CKU_USER = 0x1,
}

/// <summary>CK_STATE: a session's login state.</summary>
internal enum CKS : ulong
{
    CKS_RO_PUBLIC_SESSION = 0x0,
    CKS_RO_USER_FUNCTIONS = 0x1,
    CKS_RW_PUBLIC_SESSION = 0x2,
    CKS_RW_USER_FUNCTIONS = 0x3,
    CKS_RW_SO_FUNCTIONS = 0x4,
}

#pragma warning restore CA1069
#pragma warning restore CA1707, CA1712

/// <summary>The CK_FLAGS bits the proxy sets or reads.</summary>
internal static class CryptokiFlags
{
    /// <summary>CKF_OS_LOCKING_OK in CK_C_INITIALIZE_ARGS: the module may use the OS's locks (sessions are used from many threads).</summary>
    public const ulong OsLockingOk = 1UL << 1;

    /// <summary>CKF_RW_SESSION for C_OpenSession.</summary>
    public const ulong ReadWriteSession = 1UL << 1;

    /// <summary>CKF_SERIAL_SESSION, which C_OpenSession requires.</summary>
    public const ulong SerialSession = 1UL << 2;

    /// <summary>CKF_TOKEN_INITIALIZED in CK_TOKEN_INFO.</summary>
    public const ulong TokenInitialized = 1UL << 10;

    /// <summary>CK_UNAVAILABLE_INFORMATION: the length C_GetAttributeValue gives an attribute it cannot reveal.</summary>
    public const ulong UnavailableInformation = ulong.MaxValue;
}

/// <summary>CK_ATTRIBUTE.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CkAttribute
{
    public ulong Type;
    public nint Value;
    public ulong ValueLength;
}

/// <summary>CK_MECHANISM.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CkMechanism
{
    public ulong Mechanism;
    public nint Parameter;
    public ulong ParameterLength;
}

/// <summary>CK_C_INITIALIZE_ARGS.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CkInitializeArgs
{
    public nint CreateMutex;
    public nint DestroyMutex;
    public nint LockMutex;
    public nint UnlockMutex;
    public ulong Flags;
    public nint Reserved;
}

/// <summary>CK_SESSION_INFO.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CkSessionInfo
{
    public ulong SlotId;
    public ulong State;
    public ulong Flags;
    public ulong DeviceError;
}

/// <summary>CK_TOKEN_INFO: four fixed-size strings, a flags word, ten counters, two versions and a time string.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CkTokenInfo
{
    public const int LabelBytes = 32;

    public fixed byte Label[LabelBytes];
    public fixed byte ManufacturerId[32];
    public fixed byte Model[16];
    public fixed byte SerialNumber[16];
    public ulong Flags;
    public fixed ulong Counters[10];
    public ushort HardwareVersion;
    public ushort FirmwareVersion;
    public fixed byte UtcTime[16];
}
