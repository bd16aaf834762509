using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// One logged-in PKCS#11 session, used by one caller at a time (sessions are not thread-safe), leased from
/// <see cref="Pkcs11SessionPool"/>. Failures surface as <see cref="Pkcs11Exception"/> for the pool to classify.
/// </summary>
/// <remarks>
/// Plaintext data keys cross into the module only as short-lived session objects (CKA_TOKEN false) that are
/// destroyed before the call returns. Their bytes pass only through pinned arrays this class allocates and zeroes:
/// attribute templates never copy them (<see cref="AttributeTemplate.AddPinned"/>).
/// </remarks>
internal sealed class Pkcs11Session
{
    private const int DataKeyBytes = 32;

    private static readonly CKA[] KeyInfoAttributes =
    [
        CKA.CKA_KEY_TYPE, CKA.CKA_LABEL, CKA.CKA_VALUE_LEN, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE,
        CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_PRIVATE,
    ];

    private readonly CryptokiLibrary _library;
    private readonly ulong _session;
    private readonly ulong _slot;

    public Pkcs11Session(CryptokiLibrary library, ulong session, ulong slot, long moduleGeneration, long poolGeneration)
    {
        _library = library;
        _session = session;
        _slot = slot;
        ModuleGeneration = moduleGeneration;
        PoolGeneration = poolGeneration;
    }

    public long ModuleGeneration { get; }

    public long PoolGeneration { get; }

    public bool IsLoggedIn => _library.GetSessionState(_session) is CKS.CKS_RO_USER_FUNCTIONS or CKS.CKS_RW_USER_FUNCTIONS;

    public bool IsSecurityOfficer => _library.GetSessionState(_session) == CKS.CKS_RW_SO_FUNCTIONS;

    /// <summary>Logs the application in as the user; a login by another session of this process already counts.</summary>
    public void Login(byte[] pin)
    {
        try
        {
            _library.Login(_session, CKU.CKU_USER, pin);
        }
        catch (Pkcs11Exception ex) when (ex.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
        {
            // Login is per application and token: another pool in this process logged in first.
        }
    }

    /// <summary>Secret keys with <paramref name="label"/> (every secret key when null), with the attributes that matter for a KEK.</summary>
    public List<Pkcs11KeyInfo> FindSecretKeys(string? label)
    {
        AttributeTemplate template = new AttributeTemplate().Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY);
        if (label is not null)
        {
            template.Add(CKA.CKA_LABEL, label);
        }

        List<ulong> handles = _library.FindObjects(_session, template);
        List<Pkcs11KeyInfo> keys = new(handles.Count);
        foreach (ulong handle in handles)
        {
            keys.Add(ReadKeyInfo(handle));
        }

        return keys;
    }

    /// <summary>RFC 5649 wrap of <paramref name="dek"/> under the KEK: 40 bytes for a 32-byte key.</summary>
    public byte[] Wrap(ulong kekHandle, ReadOnlySpan<byte> dek)
    {
        ulong dekHandle = ImportDataKey(dek);
        byte[] wrapped;
        try
        {
            wrapped = _library.WrapKey(_session, CKM.CKM_AES_KEY_WRAP_PAD, kekHandle, dekHandle);
        }
        catch
        {
            DestroyQuietly(dekHandle);
            throw;
        }

        // Throws if the plaintext object stays: the pool then closes this session, which takes the object with it.
        DestroyDataKey(dekHandle);
        return wrapped;
    }

    /// <summary>
    /// Unwraps into a session object and reads its value into a pinned array the caller zeroes. The result is the
    /// key's actual length (empty if it is longer than a data key), for the caller to reject anything but 32 bytes.
    /// </summary>
    public byte[] Unwrap(ulong kekHandle, byte[] wrapped)
    {
        ulong dek = _library.UnwrapKey(_session, CKM.CKM_AES_KEY_WRAP_PAD, kekHandle, wrapped, DataKeyObject());
        byte[] value;
        try
        {
            value = ReadDataKeyValue(dek);
        }
        catch
        {
            DestroyQuietly(dek);
            throw;
        }

        try
        {
            // As for a wrap: a plaintext object that stays fails the call, and the session is closed.
            DestroyDataKey(dek);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(value);
            throw;
        }

        return value;
    }

    /// <summary>Throws <see cref="Pkcs11Exception"/> unless the session and the key handle both still work.</summary>
    public void Probe(ulong kekHandle)
    {
        _ = _library.GetSessionState(_session);
        Span<CkAttribute> keyType = [new CkAttribute { Type = (ulong)CKA.CKA_KEY_TYPE }];
        CKR rv = _library.GetAttributeValue(_session, kekHandle, keyType);
        if (rv != CKR.CKR_OK)
        {
            throw new Pkcs11Exception("C_GetAttributeValue", rv);
        }
    }

    /// <summary>Throws <see cref="Pkcs11Exception"/> unless the token still answers (SoftHSM2 fails this once its storage is gone).</summary>
    public void ProbeToken() => _ = _library.GetTokenInfo(_slot);

    /// <summary>Generates a new KEK in the token: AES-256, sensitive, never extractable, for wrapping only.</summary>
    public Pkcs11KeyInfo GenerateKek(string label)
    {
        AttributeTemplate template = new AttributeTemplate()
            .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
            .Add(CKA.CKA_KEY_TYPE, CKK.CKK_AES)
            .Add(CKA.CKA_VALUE_LEN, (ulong)Pkcs11KeyInfo.RequiredKeyBytes)
            .Add(CKA.CKA_LABEL, label)
            .Add(CKA.CKA_TOKEN, true)
            .Add(CKA.CKA_PRIVATE, true)
            .Add(CKA.CKA_SENSITIVE, true)
            .Add(CKA.CKA_EXTRACTABLE, false)
            .Add(CKA.CKA_WRAP, true)
            .Add(CKA.CKA_UNWRAP, true)
            .Add(CKA.CKA_ENCRYPT, false)
            .Add(CKA.CKA_DECRYPT, false)
            .Add(CKA.CKA_SIGN, false)
            .Add(CKA.CKA_VERIFY, false)
            .Add(CKA.CKA_DERIVE, false)
            // Nobody relabels a version (which would reorder versions) or loosens its usage after the fact.
            .Add(CKA.CKA_MODIFIABLE, false);
        return ReadKeyInfo(_library.GenerateKey(_session, CKM.CKM_AES_KEY_GEN, template));
    }

    public void Destroy(ulong handle)
    {
        CKR rv = _library.DestroyObject(_session, handle);
        if (rv != CKR.CKR_OK)
        {
            throw new Pkcs11Exception("C_DestroyObject", rv);
        }
    }

    /// <summary>
    /// Closes the session, ignoring failures: it is being dropped because something already went wrong, or at shutdown.
    /// A session of an earlier initialization of the module is not closed: it died with that initialization, and its
    /// handle may now name another pool's live session.
    /// </summary>
    public void CloseQuietly(in Pkcs11Module.CallScope call)
    {
        if (call.Generation != ModuleGeneration)
        {
            return;
        }

        try
        {
            _ = _library.CloseSession(_session);
        }
        catch (Exception ex) when (ex is Pkcs11Exception or ObjectDisposedException)
        {
            // A module without C_CloseSession, or one already unloaded at shutdown.
        }
    }

    private Pkcs11KeyInfo ReadKeyInfo(ulong handle)
    {
        byte[]?[] values = _library.GetAttributes(_session, handle, KeyInfoAttributes);
        return new Pkcs11KeyInfo(
            handle,
            values[1] is { } label ? System.Text.Encoding.UTF8.GetString(label) : "",
            ULong(values[0]) is { } keyType ? (CKK)keyType : null,
            ULong(values[2]) ?? 0,
            // An unreadable flag (absent, hidden, or not one byte as a CK_BBOOL is) takes the cautious reading: a KEK
            // with it is refused (sensitive, wrap, unwrap) or warned about (extractable, private).
            Sensitive: Flag(values[3]) ?? false,
            Extractable: Flag(values[4]) ?? true,
            Wrap: Flag(values[5]) ?? false,
            Unwrap: Flag(values[6]) ?? false,
            Private: Flag(values[7]) ?? false);

        static ulong? ULong(byte[]? value) => value is { Length: sizeof(ulong) } ? MemoryMarshal.Read<ulong>(value) : null;

        static bool? Flag(byte[]? value) => value is [byte one] ? one != 0 : null;
    }

    /// <summary>
    /// A plaintext data key as a session object (CKA_TOKEN false), which lives only until the wrap or the read of its
    /// value returns: not sensitive and extractable, because C_WrapKey must wrap it and the host must read it.
    /// </summary>
    private static AttributeTemplate DataKeyObject() => new AttributeTemplate()
        .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
        .Add(CKA.CKA_KEY_TYPE, CKK.CKK_AES)
        .Add(CKA.CKA_TOKEN, false)
        .Add(CKA.CKA_PRIVATE, true)
        .Add(CKA.CKA_SENSITIVE, false)
        .Add(CKA.CKA_EXTRACTABLE, true);

    private ulong ImportDataKey(ReadOnlySpan<byte> dek)
    {
        // A pinned array never moves, so its address can be handed to the module and the bytes zeroed afterwards.
        byte[] value = GC.AllocateArray<byte>(dek.Length, pinned: true);
        dek.CopyTo(value);
        try
        {
            return _library.CreateObject(_session, DataKeyObject().AddPinned(CKA.CKA_VALUE, value));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(value);
        }
    }

    private byte[] ReadDataKeyValue(ulong handle)
    {
        byte[] value = GC.AllocateArray<byte>(DataKeyBytes, pinned: true);
        Span<CkAttribute> template =
        [
            new CkAttribute
            {
                Type = (ulong)CKA.CKA_VALUE,
                Value = Marshal.UnsafeAddrOfPinnedArrayElement(value, 0),
                ValueLength = DataKeyBytes,
            },
        ];
        CKR rv = _library.GetAttributeValue(_session, handle, template);

        // Longer than a data key, whether the module says so with CKR_BUFFER_TOO_SMALL or (wrongly) with a length
        // past the buffer and CKR_OK: empty, never its first 32 bytes.
        if (rv == CKR.CKR_BUFFER_TOO_SMALL || (rv == CKR.CKR_OK && template[0].ValueLength > DataKeyBytes))
        {
            CryptographicOperations.ZeroMemory(value);
            return [];
        }

        if (rv != CKR.CKR_OK)
        {
            CryptographicOperations.ZeroMemory(value);
            throw new Pkcs11Exception("C_GetAttributeValue", rv);
        }

        if (template[0].ValueLength == DataKeyBytes)
        {
            return value;
        }

        // Shorter than a data key: hand back what it is, for the caller to refuse.
        byte[] shorter = GC.AllocateArray<byte>((int)template[0].ValueLength, pinned: true);
        value.AsSpan(0, shorter.Length).CopyTo(shorter);
        CryptographicOperations.ZeroMemory(value);
        return shorter;
    }

    /// <summary>Destroys a plaintext data key object, or throws <see cref="Pkcs11Exception"/> if it may still exist.</summary>
    private void DestroyDataKey(ulong handle)
    {
        CKR rv = _library.DestroyObject(_session, handle);
        if (rv is not (CKR.CKR_OK or CKR.CKR_OBJECT_HANDLE_INVALID))
        {
            throw new Pkcs11Exception("C_DestroyObject", rv);
        }
    }

    private void DestroyQuietly(ulong handle)
    {
        try
        {
            _ = _library.DestroyObject(_session, handle);
        }
        catch (Exception ex) when (ex is Pkcs11Exception or ObjectDisposedException)
        {
            // The module went away, and its session objects with it.
        }
    }
}
