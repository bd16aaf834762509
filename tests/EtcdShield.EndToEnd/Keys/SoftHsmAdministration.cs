using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using Net.Pkcs11Interop.Common;
using LowLevel = Net.Pkcs11Interop.LowLevelAPI80;

namespace EtcdShield.EndToEnd.Keys;

/// <summary>
/// What the tests do to the in-process SoftHSM that the proxy never does (initialize tokens, set PINs, make keys with
/// chosen flags, read attributes raw), through Pkcs11Interop's low-level API: an implementation independent of the
/// proxy's own Cryptoki binding, so the tests do not check that binding with itself.
/// </summary>
/// <remarks>
/// It loads the same module file, which the process's loader hands back as the same library, already initialized by
/// the proxy's <c>Pkcs11Module</c> (a module is initialized once per process); so it never calls C_Initialize or
/// C_Finalize itself.
/// </remarks>
internal sealed class SoftHsmAdministration : IDisposable
{
    private readonly LowLevel.Pkcs11Library _library;

    static SoftHsmAdministration() =>
        NativeLibrary.SetDllImportResolver(typeof(LowLevel.Pkcs11Library).Assembly, ResolveLibdl);

    public SoftHsmAdministration(string modulePath) => _library = new LowLevel.Pkcs11Library(modulePath);

    /// <summary>C_InitToken on the module's free slot, then the user PIN set by the security officer.</summary>
    public void InitializeToken(string label, string soPin, string userPin)
    {
        ulong free = Slots().First(slot => TokenInfo(slot) is { } info && (info.Flags & CKF.CKF_TOKEN_INITIALIZED) == 0);
        byte[] paddedLabel = Encoding.UTF8.GetBytes(label.PadRight(32));
        Check(_library.C_InitToken(free, Bytes(soPin), (ulong)soPin.Length, paddedLabel), "C_InitToken");
        ulong session = OpenSession(SlotOf(label));
        try
        {
            Check(_library.C_Login(session, CKU.CKU_SO, Bytes(soPin), (ulong)soPin.Length), "C_Login");
            Check(_library.C_InitPIN(session, Bytes(userPin), (ulong)userPin.Length), "C_InitPIN");
            Check(_library.C_Logout(session), "C_Logout");
        }
        finally
        {
            _ = _library.C_CloseSession(session);
        }
    }

    /// <summary>An AES token key with exactly these flags, logged in as the user.</summary>
    public void GenerateAesKey(string tokenLabel, string userPin, string keyLabel, int bytes, bool sensitive, bool wrap, bool unwrap)
    {
        LowLevel.CK_ATTRIBUTE[] template =
        [
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_VALUE_LEN, (ulong)bytes),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_LABEL, keyLabel),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_TOKEN, true),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_PRIVATE, true),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_SENSITIVE, sensitive),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_WRAP, wrap),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_UNWRAP, unwrap),
        ];
        try
        {
            UserSession(tokenLabel, userPin, session =>
            {
                LowLevel.CK_MECHANISM mechanism = LowLevel.CkmUtils.CreateMechanism(CKM.CKM_AES_KEY_GEN);
                ulong key = 0;
                Check(_library.C_GenerateKey(session, ref mechanism, template, (ulong)template.Length, ref key), "C_GenerateKey");
                return key;
            });
        }
        finally
        {
            for (int i = 0; i < template.Length; i++)
            {
                UnmanagedMemory.Free(ref template[i].value);
            }
        }
    }

    /// <summary>The raw C_GetAttributeValue of CKA_VALUE into a 64-byte buffer: its return value and what the buffer then holds.</summary>
    public (CKR Rv, byte[] Buffer) ReadValue(string tokenLabel, string userPin, ulong handle)
    {
        byte[] value = GC.AllocateArray<byte>(64, pinned: true);
        LowLevel.CK_ATTRIBUTE[] template =
        [
            new LowLevel.CK_ATTRIBUTE { type = (ulong)CKA.CKA_VALUE, value = Marshal.UnsafeAddrOfPinnedArrayElement(value, 0), valueLen = 64 },
        ];
        CKR rv = UserSession(tokenLabel, userPin, session => _library.C_GetAttributeValue(session, handle, template, 1));
        return (rv, value);
    }

    public void Dispose() => _library.Dispose();

    private T UserSession<T>(string tokenLabel, string userPin, Func<ulong, T> body)
    {
        ulong session = OpenSession(SlotOf(tokenLabel));
        try
        {
            CKR login = _library.C_Login(session, CKU.CKU_USER, Bytes(userPin), (ulong)userPin.Length);
            if (login is not (CKR.CKR_OK or CKR.CKR_USER_ALREADY_LOGGED_IN))
            {
                // Login is per process and token: a provider in this process may be logged in already.
                throw new InvalidOperationException($"C_Login returned {login}");
            }

            return body(session);
        }
        finally
        {
            _ = _library.C_CloseSession(session);
        }
    }

    private ulong SlotOf(string label) => Slots().Single(slot => TokenInfo(slot) is { } info && Encoding.UTF8.GetString(info.Label).TrimEnd() == label);

    private ulong OpenSession(ulong slot)
    {
        ulong session = 0;
        Check(_library.C_OpenSession(slot, CKF.CKF_SERIAL_SESSION | CKF.CKF_RW_SESSION, IntPtr.Zero, IntPtr.Zero, ref session), "C_OpenSession");
        return session;
    }

    private ulong[] Slots()
    {
        ulong count = 0;
        Check(_library.C_GetSlotList(true, null, ref count), "C_GetSlotList");
        ulong[] slots = new ulong[count];
        Check(_library.C_GetSlotList(true, slots, ref count), "C_GetSlotList");
        return slots[..(int)count];
    }

    private LowLevel.CK_TOKEN_INFO? TokenInfo(ulong slot)
    {
        LowLevel.CK_TOKEN_INFO info = new();
        // A token whose storage a test took away answers with an error: not a candidate.
        return _library.C_GetTokenInfo(slot, ref info) == CKR.CKR_OK ? info : null;
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    private static void Check(CKR rv, string method)
    {
        if (rv != CKR.CKR_OK)
        {
            throw new InvalidOperationException($"{method} returned {rv}");
        }
    }

    /// <summary>Pkcs11Interop 5.3 binds dlopen to "libdl", a name glibc 2.34+ ships only as libdl.so.2 (and in libc itself).</summary>
    private static IntPtr ResolveLibdl(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != "libdl")
        {
            return IntPtr.Zero;
        }

        foreach (string candidate in (string[])["libdl.so.2", "libc.so.6"])
        {
            if (NativeLibrary.TryLoad(candidate, out IntPtr handle))
            {
                return handle;
            }
        }

        return IntPtr.Zero;
    }
}
