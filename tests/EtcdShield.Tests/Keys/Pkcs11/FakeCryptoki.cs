using System.Runtime.InteropServices;
using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Tests.Keys.Pkcs11;

/// <summary>
/// A fake PKCS#11 module in this process: a CK_FUNCTION_LIST (v2.40) of [UnmanagedCallersOnly] methods, for the
/// module behaviours SoftHSM2 never shows. There is one, as a real module is one per process: its tests share
/// <see cref="FakeCryptokiTests"/> and <see cref="Reset"/> it first.
/// </summary>
internal static unsafe class FakeCryptoki
{
    private const int Functions = 68;

    private static readonly nint List = CreateList();

    public static bool Initialized { get; private set; }

    /// <summary>C_Finalize answers CKR_GENERAL_ERROR and leaves the module initialized, as a client whose device is gone may.</summary>
    public static bool FinalizeFails { get; set; }

    public static int FinalizeCalls { get; private set; }

    /// <summary>The slot ids C_GetSlotList reports.</summary>
    public static ulong[] Slots { get; set; } = [];

    /// <summary>What the first length query answers instead of the count of <see cref="Slots"/>: a token arrived after it.</summary>
    public static ulong? FirstSlotCount { get; set; }

    /// <summary>How many handles C_FindObjects hands out, one per call, however many there are: a module stuck answering.</summary>
    public static int EndlessFindLimit { get; set; }

    public static int FoundSoFar { get; private set; }

    /// <summary>What C_DestroyObject answers (it destroys nothing either way).</summary>
    public static CKR DestroyAnswer { get; set; }

    /// <summary>The length C_GetAttributeValue reports with CKR_OK, whatever room it was given (32 bytes are written).</summary>
    public static ulong ReportedValueLength { get; set; } = 32;

    public static void Reset()
    {
        ReportedValueLength = 32;
        DestroyAnswer = CKR.CKR_OK;
        EndlessFindLimit = 0;
        FoundSoFar = 0;
        Initialized = false;
        FinalizeFails = false;
        FinalizeCalls = 0;
        Slots = [];
        FirstSlotCount = null;
    }

    public static CryptokiLibrary Load(string path) => CryptokiLibrary.FromFunctionList(path, List);

    private static nint CreateList()
    {
        byte* list = (byte*)NativeMemory.AllocZeroed(8 + (Functions * (nuint)sizeof(nint)));
        list[0] = 2;
        list[1] = 40;
        var functions = (nint*)(list + 8);
        functions[0] = (nint)(delegate* unmanaged<nint, ulong>)&Initialize;
        functions[1] = (nint)(delegate* unmanaged<nint, ulong>)&Finalize;
        functions[4] = (nint)(delegate* unmanaged<byte, ulong*, ulong*, ulong>)&GetSlotList;
        functions[20] = (nint)(delegate* unmanaged<ulong, CkAttribute*, ulong, ulong*, ulong>)&CreateObject;
        functions[22] = (nint)(delegate* unmanaged<ulong, ulong, ulong>)&DestroyObject;
        functions[24] = (nint)(delegate* unmanaged<ulong, ulong, CkAttribute*, ulong, ulong>)&GetAttributeValue;
        functions[60] = (nint)(delegate* unmanaged<ulong, CkMechanism*, ulong, ulong, byte*, ulong*, ulong>)&WrapKey;
        functions[61] = (nint)(delegate* unmanaged<ulong, CkMechanism*, ulong, byte*, ulong, CkAttribute*, ulong, ulong*, ulong>)&UnwrapKey;
        functions[26] = (nint)(delegate* unmanaged<ulong, CkAttribute*, ulong, ulong>)&FindObjectsInit;
        functions[27] = (nint)(delegate* unmanaged<ulong, ulong*, ulong, ulong*, ulong>)&FindObjects;
        functions[28] = (nint)(delegate* unmanaged<ulong, ulong>)&FindObjectsFinal;
        return (nint)list;
    }

    [UnmanagedCallersOnly]
    private static ulong Initialize(nint args)
    {
        if (Initialized)
        {
            return (ulong)CKR.CKR_CRYPTOKI_ALREADY_INITIALIZED;
        }

        Initialized = true;
        return (ulong)CKR.CKR_OK;
    }

    [UnmanagedCallersOnly]
    private static ulong Finalize(nint reserved)
    {
        FinalizeCalls++;
        if (!Initialized)
        {
            return (ulong)CKR.CKR_CRYPTOKI_NOT_INITIALIZED;
        }

        if (FinalizeFails)
        {
            return (ulong)CKR.CKR_GENERAL_ERROR;
        }

        Initialized = false;
        return (ulong)CKR.CKR_OK;
    }

    [UnmanagedCallersOnly]
    private static ulong CreateObject(ulong session, CkAttribute* template, ulong count, ulong* handle)
    {
        *handle = 100;
        return (ulong)CKR.CKR_OK;
    }

    [UnmanagedCallersOnly]
    private static ulong DestroyObject(ulong session, ulong handle) => (ulong)DestroyAnswer;

    /// <summary>Every attribute asked for is <see cref="ReportedValueLength"/> bytes of 0x5A (32: the data key's value, for the tests).</summary>
    [UnmanagedCallersOnly]
    private static ulong GetAttributeValue(ulong session, ulong handle, CkAttribute* template, ulong count)
    {
        for (ulong i = 0; i < count; i++)
        {
            if (template[i].Value != 0)
            {
                // Within the buffer the caller gave, as a module must.
                new Span<byte>((void*)template[i].Value, (int)Math.Min(template[i].ValueLength, 32)).Fill(0x5A);
            }

            template[i].ValueLength = ReportedValueLength;
        }

        return (ulong)CKR.CKR_OK;
    }

    /// <summary>40 bytes of 0xA5, an RFC 5649 wrap's length.</summary>
    [UnmanagedCallersOnly]
    private static ulong WrapKey(ulong session, CkMechanism* mechanism, ulong wrappingKey, ulong key, byte* wrapped, ulong* length)
    {
        if (wrapped is not null)
        {
            new Span<byte>(wrapped, 40).Fill(0xA5);
        }

        *length = 40;
        return (ulong)CKR.CKR_OK;
    }

    [UnmanagedCallersOnly]
    private static ulong UnwrapKey(ulong session, CkMechanism* mechanism, ulong unwrappingKey, byte* wrapped, ulong wrappedLength, CkAttribute* template, ulong count, ulong* handle)
    {
        *handle = 101;
        return (ulong)CKR.CKR_OK;
    }

    [UnmanagedCallersOnly]
    private static ulong FindObjectsInit(ulong session, CkAttribute* template, ulong count) => (ulong)CKR.CKR_OK;

    [UnmanagedCallersOnly]
    private static ulong FindObjects(ulong session, ulong* handles, ulong max, ulong* count)
    {
        // The same object again and again, until the limit.
        *count = FoundSoFar < EndlessFindLimit ? 1UL : 0UL;
        if (*count == 1)
        {
            handles[0] = 42;
            FoundSoFar++;
        }

        return (ulong)CKR.CKR_OK;
    }

    [UnmanagedCallersOnly]
    private static ulong FindObjectsFinal(ulong session) => (ulong)CKR.CKR_OK;

    [UnmanagedCallersOnly]
    private static ulong GetSlotList(byte tokenPresent, ulong* list, ulong* count)
    {
        if (list is null)
        {
            *count = FirstSlotCount ?? (ulong)Slots.Length;
            FirstSlotCount = null;
            return (ulong)CKR.CKR_OK;
        }

        if (*count < (ulong)Slots.Length)
        {
            *count = (ulong)Slots.Length;
            return (ulong)CKR.CKR_BUFFER_TOO_SMALL;
        }

        Slots.CopyTo(new Span<ulong>(list, Slots.Length));
        *count = (ulong)Slots.Length;
        return (ulong)CKR.CKR_OK;
    }
}

/// <summary>The tests of <see cref="FakeCryptoki"/>, one after another.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FakeCryptokiTests
{
    public const string Name = "Fake PKCS#11 module";
}
