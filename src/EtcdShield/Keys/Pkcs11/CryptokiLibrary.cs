using System.Runtime.InteropServices;
using System.Text;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// A loaded PKCS#11 module and the Cryptoki functions the proxy calls, through the module's CK_FUNCTION_LIST as
/// unmanaged function pointers: no marshalling (every argument is a CK_ULONG, a pointer or a blittable structure),
/// so the same code runs under the JIT and in a Native AOT program. 64-bit Unix only (<see cref="IsSupportedPlatform"/>).
/// </summary>
/// <remarks>
/// Thread-safety is the module's (C_Initialize is called with CKF_OS_LOCKING_OK); <see cref="Pkcs11Module"/> keeps
/// C_Finalize and unloading away from calls in progress. A call after <see cref="Dispose"/> throws
/// <see cref="ObjectDisposedException"/> instead of jumping into an unloaded library.
/// </remarks>
internal sealed unsafe partial class CryptokiLibrary : IDisposable
{
    // Indexes into CK_FUNCTION_LIST after its CK_VERSION (pkcs11.h, v2.40; v3.0 lists begin the same way).
    private const int InitializeIndex = 0;
    private const int FinalizeIndex = 1;
    private const int GetSlotListIndex = 4;
    private const int GetTokenInfoIndex = 6;
    private const int OpenSessionIndex = 12;
    private const int CloseSessionIndex = 13;
    private const int GetSessionInfoIndex = 15;
    private const int LoginIndex = 18;
    private const int CreateObjectIndex = 20;
    private const int DestroyObjectIndex = 22;
    private const int GetAttributeValueIndex = 24;
    private const int FindObjectsInitIndex = 26;
    private const int FindObjectsIndex = 27;
    private const int FindObjectsFinalIndex = 28;
    private const int GenerateKeyIndex = 58;
    private const int WrapKeyIndex = 60;
    private const int UnwrapKeyIndex = 61;

    /// <summary>CK_VERSION (two bytes) padded to the pointers' alignment.</summary>
    private const int FunctionsOffset = 8;

    /// <summary>More than any token has; a module that reports more is refused rather than trusted with a huge buffer.</summary>
    private const int MaxSlots = 4096;

    /// <summary>The most objects one search may find: far more than a token dedicated to EtcdShield holds.</summary>
    private const int MaxObjects = 100_000;

    /// <summary>The most bytes one attribute value (a label) or a wrapped key may take here.</summary>
    private const int MaxValueBytes = 64 * 1024;

    private readonly nint _handle;
    private readonly nint* _functions;
    private volatile bool _disposed;

    private CryptokiLibrary(string path, nint handle, nint* functions)
    {
        Path = path;
        _handle = handle;
        _functions = functions;
    }

    public string Path { get; }

    /// <summary>Where CK_ULONG is 64 bits and structures are naturally aligned, as these declarations assume.</summary>
    public static bool IsSupportedPlatform =>
        Environment.Is64BitProcess && (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD());

    /// <summary>dlopen()s the module and takes its function list (C_GetFunctionList); does not initialize it.</summary>
    /// <exception cref="DllNotFoundException">The module cannot be loaded.</exception>
    /// <exception cref="EntryPointNotFoundException">It is not a PKCS#11 module.</exception>
    /// <exception cref="Pkcs11Exception">C_GetFunctionList failed.</exception>
    public static CryptokiLibrary Load(string path)
    {
        nint handle = Open(path);
        try
        {
            var getFunctionList = (delegate* unmanaged<nint*, ulong>)NativeLibrary.GetExport(handle, "C_GetFunctionList");
            nint list = 0;
            var rv = (CKR)getFunctionList(&list);
            if (rv != CKR.CKR_OK)
            {
                throw new Pkcs11Exception("C_GetFunctionList", rv);
            }

            if (list == 0 || *(byte*)list < 2)
            {
                // No list, or one older than v2 whose layout differs.
                throw new Pkcs11Exception("C_GetFunctionList", CKR.CKR_GENERAL_ERROR);
            }

            return new CryptokiLibrary(path, handle, (nint*)((byte*)list + FunctionsOffset));
        }
        catch
        {
            NativeLibrary.Free(handle);
            throw;
        }
    }

    /// <summary>
    /// dlopen(path, RTLD_NOW | RTLD_LOCAL) from the C library (glibc 2.34 and later, as Debian 12 ships), as Pkcs11Interop did: a symbol missing from the module's dependencies fails
    /// the load here, not a call later, which would abort the process; and the module's symbols stay its own.
    /// </summary>
    private static nint Open(string path)
    {
        const int Now = 0x2;
        int local = OperatingSystem.IsMacOS() ? 0x4 : 0x0;
        nint handle = OpenLibrary(path, Now | local);
        if (handle == 0)
        {
            throw new DllNotFoundException(Marshal.PtrToStringUTF8(LastLoadError()) ?? $"dlopen({path}) failed");
        }

        return handle;
    }

    [LibraryImport("libc", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial nint OpenLibrary(string path, int flags);

    [LibraryImport("libc", EntryPoint = "dlerror")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial nint LastLoadError();

    /// <summary>A module already in memory, by its CK_FUNCTION_LIST (the unit tests' fake modules); Dispose leaves it loaded.</summary>
    internal static CryptokiLibrary FromFunctionList(string path, nint functionList) =>
        new(path, 0, (nint*)((byte*)functionList + FunctionsOffset));

    /// <summary>C_Initialize, telling the module it may use the OS's locks.</summary>
    public void Initialize()
    {
        CkInitializeArgs args = new() { Flags = CryptokiFlags.OsLockingOk };
        Check("C_Initialize", ((delegate* unmanaged<CkInitializeArgs*, ulong>)Function(InitializeIndex, "C_Initialize"))(&args));
    }

    /// <summary>C_Finalize; the result is only for logging, since the module is being dropped either way.</summary>
    public CKR FinalizeModule() => (CKR)((delegate* unmanaged<nint, ulong>)Function(FinalizeIndex, "C_Finalize"))(0);

    /// <summary>C_GetSlotList(tokenPresent: true).</summary>
    public ulong[] GetSlotsWithToken()
    {
        var getSlotList = (delegate* unmanaged<byte, ulong*, ulong*, ulong>)Function(GetSlotListIndex, "C_GetSlotList");
        for (int attempt = 0; ; attempt++)
        {
            ulong count = 0;
            Check("C_GetSlotList", getSlotList(1, null, &count));
            if (count > MaxSlots)
            {
                throw new Pkcs11Exception("C_GetSlotList", CKR.CKR_GENERAL_ERROR);
            }

            if (count == 0)
            {
                // Not a read with an empty buffer: `fixed` would pass NULL, which asks for the length again.
                return [];
            }

            ulong[] slots = new ulong[count];
            fixed (ulong* buffer = slots)
            {
                var rv = (CKR)getSlotList(1, buffer, &count);
                if ((rv == CKR.CKR_BUFFER_TOO_SMALL || (rv == CKR.CKR_OK && count > (ulong)slots.Length)) && attempt < 3)
                {
                    // A token arrived between the two calls.
                    continue;
                }

                Check("C_GetSlotList", rv);
            }

            return count == (ulong)slots.Length ? slots : slots[..(int)Math.Min(count, (ulong)slots.Length)];
        }
    }

    /// <summary>C_GetTokenInfo: the token's label (blank padding removed) and whether it has been initialized.</summary>
    public (string Label, bool Initialized) GetTokenInfo(ulong slot)
    {
        CkTokenInfo info;
        Check("C_GetTokenInfo", ((delegate* unmanaged<ulong, CkTokenInfo*, ulong>)Function(GetTokenInfoIndex, "C_GetTokenInfo"))(slot, &info));
        string label = Encoding.UTF8.GetString(info.Label, CkTokenInfo.LabelBytes).TrimEnd(' ', '\0');
        return (label, (info.Flags & CryptokiFlags.TokenInitialized) != 0);
    }

    public ulong OpenSession(ulong slot, bool readWrite)
    {
        ulong flags = CryptokiFlags.SerialSession | (readWrite ? CryptokiFlags.ReadWriteSession : 0);
        ulong session = 0;
        Check("C_OpenSession", ((delegate* unmanaged<ulong, ulong, nint, nint, ulong*, ulong>)Function(OpenSessionIndex, "C_OpenSession"))(slot, flags, 0, 0, &session));
        return session;
    }

    public CKR CloseSession(ulong session) => (CKR)((delegate* unmanaged<ulong, ulong>)Function(CloseSessionIndex, "C_CloseSession"))(session);

    public CKS GetSessionState(ulong session)
    {
        CkSessionInfo info;
        Check("C_GetSessionInfo", ((delegate* unmanaged<ulong, CkSessionInfo*, ulong>)Function(GetSessionInfoIndex, "C_GetSessionInfo"))(session, &info));
        return (CKS)info.State;
    }

    public void Login(ulong session, CKU user, ReadOnlySpan<byte> pin)
    {
        fixed (byte* pinBytes = pin)
        {
            Check("C_Login", ((delegate* unmanaged<ulong, ulong, byte*, ulong, ulong>)Function(LoginIndex, "C_Login"))(session, (ulong)user, pinBytes, (ulong)pin.Length));
        }
    }

    /// <summary>Every object matching <paramref name="template"/> (C_FindObjectsInit, C_FindObjects until none is left, C_FindObjectsFinal).</summary>
    public List<ulong> FindObjects(ulong session, AttributeTemplate template)
    {
        Span<CkAttribute> attributes = stackalloc CkAttribute[template.Count];
        // The template stays pinned for the whole search, not only for C_FindObjectsInit: a module may keep the pointer.
        fixed (byte* values = template.Values)
        fixed (CkAttribute* first = attributes)
        {
            template.Fill(attributes, values);
            Check("C_FindObjectsInit", ((delegate* unmanaged<ulong, CkAttribute*, ulong, ulong>)Function(FindObjectsInitIndex, "C_FindObjectsInit"))(session, first, (ulong)template.Count));
            List<ulong> found = [];
            var findObjects = (delegate* unmanaged<ulong, ulong*, ulong, ulong*, ulong>)Function(FindObjectsIndex, "C_FindObjects");
            try
            {
                const int Batch = 64;
                ulong* handles = stackalloc ulong[Batch];
                while (true)
                {
                    ulong count = 0;
                    Check("C_FindObjects", findObjects(session, handles, Batch, &count));
                    if (count == 0)
                    {
                        return found;
                    }

                    if (count > Batch || found.Count + (int)count > MaxObjects)
                    {
                        // More than it had room for, or more than any token holds: a module gone wrong, not followed.
                        throw new Pkcs11Exception("C_FindObjects", CKR.CKR_GENERAL_ERROR);
                    }

                    for (int i = 0; i < (int)count; i++)
                    {
                        found.Add(handles[i]);
                    }
                }
            }
            finally
            {
                _ = ((delegate* unmanaged<ulong, ulong>)Function(FindObjectsFinalIndex, "C_FindObjectsFinal"))(session);
            }
        }
    }

    /// <summary>
    /// C_GetAttributeValue for each of <paramref name="types"/>: its bytes, or null for one the object does not have
    /// or will not reveal (CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID). Asks for the lengths first.
    /// </summary>
    public byte[]?[] GetAttributes(ulong session, ulong handle, ReadOnlySpan<CKA> types)
    {
        Span<CkAttribute> attributes = stackalloc CkAttribute[types.Length];
        for (int i = 0; i < types.Length; i++)
        {
            attributes[i] = new CkAttribute { Type = (ulong)types[i] };
        }

        Readable("C_GetAttributeValue", GetAttributeValue(session, handle, attributes));
        byte[]?[] values = new byte[]?[types.Length];
        for (int i = 0; i < types.Length; i++)
        {
            ulong length = attributes[i].ValueLength;
            values[i] = length <= MaxValueBytes ? GC.AllocateArray<byte>((int)length, pinned: true) : null;
            attributes[i].Value = values[i] is { } buffer ? Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0) : 0;
            attributes[i].ValueLength = values[i] is { } sized ? (ulong)sized.Length : 0;
        }

        Readable("C_GetAttributeValue", GetAttributeValue(session, handle, attributes));
        for (int i = 0; i < types.Length; i++)
        {
            if (values[i] is { } buffer && attributes[i].ValueLength != (ulong)buffer.Length)
            {
                // Unavailable after all, or it changed between the calls: not trusted as a value.
                values[i] = attributes[i].ValueLength < (ulong)buffer.Length ? buffer[..(int)attributes[i].ValueLength] : null;
            }
        }

        return values;

        static void Readable(string method, CKR rv)
        {
            // These three still fill in every attribute they can: the others are marked unavailable.
            if (rv is not (CKR.CKR_OK or CKR.CKR_ATTRIBUTE_SENSITIVE or CKR.CKR_ATTRIBUTE_TYPE_INVALID or CKR.CKR_BUFFER_TOO_SMALL))
            {
                throw new Pkcs11Exception(method, rv);
            }
        }
    }

    /// <summary>C_GetAttributeValue into buffers the caller owns (and zeroes, for a key's value).</summary>
    public CKR GetAttributeValue(ulong session, ulong handle, Span<CkAttribute> attributes)
    {
        fixed (CkAttribute* first = attributes)
        {
            return (CKR)((delegate* unmanaged<ulong, ulong, CkAttribute*, ulong, ulong>)Function(GetAttributeValueIndex, "C_GetAttributeValue"))(session, handle, first, (ulong)attributes.Length);
        }
    }

    public ulong CreateObject(ulong session, AttributeTemplate template)
    {
        Span<CkAttribute> attributes = stackalloc CkAttribute[template.Count];
        ulong handle = 0;
        fixed (byte* values = template.Values)
        fixed (CkAttribute* first = attributes)
        {
            template.Fill(attributes, values);
            Check("C_CreateObject", ((delegate* unmanaged<ulong, CkAttribute*, ulong, ulong*, ulong>)Function(CreateObjectIndex, "C_CreateObject"))(session, first, (ulong)template.Count, &handle));
        }

        return handle;
    }

    public CKR DestroyObject(ulong session, ulong handle) => (CKR)((delegate* unmanaged<ulong, ulong, ulong>)Function(DestroyObjectIndex, "C_DestroyObject"))(session, handle);

    /// <summary>C_GenerateKey with a mechanism that takes no parameter.</summary>
    public ulong GenerateKey(ulong session, CKM mechanism, AttributeTemplate template)
    {
        CkMechanism m = new() { Mechanism = (ulong)mechanism };
        Span<CkAttribute> attributes = stackalloc CkAttribute[template.Count];
        ulong handle = 0;
        fixed (byte* values = template.Values)
        fixed (CkAttribute* first = attributes)
        {
            template.Fill(attributes, values);
            Check("C_GenerateKey", ((delegate* unmanaged<ulong, CkMechanism*, CkAttribute*, ulong, ulong*, ulong>)Function(GenerateKeyIndex, "C_GenerateKey"))(session, &m, first, (ulong)template.Count, &handle));
        }

        return handle;
    }

    /// <summary>C_WrapKey, asking for the length first.</summary>
    public byte[] WrapKey(ulong session, CKM mechanism, ulong wrappingKey, ulong key)
    {
        CkMechanism m = new() { Mechanism = (ulong)mechanism };
        var wrapKey = (delegate* unmanaged<ulong, CkMechanism*, ulong, ulong, byte*, ulong*, ulong>)Function(WrapKeyIndex, "C_WrapKey");
        ulong length = 0;
        Check("C_WrapKey", wrapKey(session, &m, wrappingKey, key, null, &length));
        if (length > MaxValueBytes)
        {
            throw new Pkcs11Exception("C_WrapKey", CKR.CKR_GENERAL_ERROR);
        }

        byte[] wrapped = new byte[length];
        fixed (byte* buffer = wrapped)
        {
            Check("C_WrapKey", wrapKey(session, &m, wrappingKey, key, buffer, &length));
        }

        return length == (ulong)wrapped.Length ? wrapped : wrapped[..(int)Math.Min(length, (ulong)wrapped.Length)];
    }

    /// <summary>C_UnwrapKey with a mechanism that takes no parameter: the new object's handle.</summary>
    public ulong UnwrapKey(ulong session, CKM mechanism, ulong unwrappingKey, ReadOnlySpan<byte> wrapped, AttributeTemplate template)
    {
        CkMechanism m = new() { Mechanism = (ulong)mechanism };
        Span<CkAttribute> attributes = stackalloc CkAttribute[template.Count];
        ulong handle = 0;
        fixed (byte* wrappedBytes = wrapped)
        fixed (byte* values = template.Values)
        fixed (CkAttribute* first = attributes)
        {
            template.Fill(attributes, values);
            Check("C_UnwrapKey", ((delegate* unmanaged<ulong, CkMechanism*, ulong, byte*, ulong, CkAttribute*, ulong, ulong*, ulong>)Function(UnwrapKeyIndex, "C_UnwrapKey"))(
                session, &m, unwrappingKey, wrappedBytes, (ulong)wrapped.Length, first, (ulong)template.Count, &handle));
        }

        return handle;
    }

    /// <summary>dlclose()s the module; the caller has finalized it and no call is in progress.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_handle != 0)
        {
            NativeLibrary.Free(_handle);
        }
    }

    private static void Check(string method, ulong rv)
    {
        if (rv != (ulong)CKR.CKR_OK)
        {
            throw new Pkcs11Exception(method, (CKR)rv);
        }
    }

    private static void Check(string method, CKR rv) => Check(method, (ulong)rv);

    private nint Function(int index, string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        nint function = _functions[index];
        return function != 0 ? function : throw new Pkcs11Exception(name, CKR.CKR_FUNCTION_NOT_SUPPORTED);
    }
}
