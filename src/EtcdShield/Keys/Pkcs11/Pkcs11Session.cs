using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;
using ISession = Net.Pkcs11Interop.HighLevelAPI.ISession;
using LowLevel = Net.Pkcs11Interop.LowLevelAPI80;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// One logged-in PKCS#11 session, used by one caller at a time (sessions are not thread-safe), leased from
/// <see cref="Pkcs11SessionPool"/>. Failures surface as <see cref="Pkcs11Exception"/> for the pool to classify.
/// </summary>
/// <remarks>
/// Plaintext data keys cross into the module only as short-lived session objects (CKA_TOKEN false) that are
/// destroyed before the call returns. Their bytes pass through unmanaged buffers this class allocates and zeroes;
/// Pkcs11Interop's own attribute buffers are freed without zeroing, so they carry no key bytes.
/// </remarks>
internal sealed class Pkcs11Session
{
    private const int DataKeyBytes = 32;

    private static readonly CKA[] KeyInfoAttributes =
    [
        CKA.CKA_KEY_TYPE, CKA.CKA_LABEL, CKA.CKA_VALUE_LEN, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE,
        CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_PRIVATE,
    ];

    private readonly ISession _session;
    private readonly ISlot _slot;
    private readonly Pkcs11InteropFactories _factories;
    private readonly LowLevel.Pkcs11Library _lowLevel;

    public Pkcs11Session(ISession session, ISlot slot, Pkcs11InteropFactories factories, LowLevel.Pkcs11Library lowLevel, long moduleGeneration, long poolGeneration)
    {
        _session = session;
        _slot = slot;
        _factories = factories;
        _lowLevel = lowLevel;
        ModuleGeneration = moduleGeneration;
        PoolGeneration = poolGeneration;
    }

    public long ModuleGeneration { get; }

    public long PoolGeneration { get; }

    public bool IsLoggedIn => _session.GetSessionInfo().State is CKS.CKS_RO_USER_FUNCTIONS or CKS.CKS_RW_USER_FUNCTIONS;

    public bool IsSecurityOfficer => _session.GetSessionInfo().State == CKS.CKS_RW_SO_FUNCTIONS;

    /// <summary>Logs the application in as the user; a login by another session of this process already counts.</summary>
    public void Login(byte[] pin)
    {
        try
        {
            _session.Login(CKU.CKU_USER, pin);
        }
        catch (Pkcs11Exception ex) when (ex.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
        {
            // Login is per application and token: another pool in this process logged in first.
        }
    }

    /// <summary>Secret keys with <paramref name="label"/> (every secret key when null), with the attributes that matter for a KEK.</summary>
    public List<Pkcs11KeyInfo> FindSecretKeys(string? label)
    {
        List<IObjectAttribute> template = [_factories.ObjectAttributeFactory.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)];
        if (label is not null)
        {
            template.Add(_factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, label));
        }

        List<IObjectHandle> handles;
        try
        {
            handles = _session.FindAllObjects(template);
        }
        finally
        {
            DisposeAll(template);
        }

        List<Pkcs11KeyInfo> keys = new(handles.Count);
        foreach (IObjectHandle handle in handles)
        {
            keys.Add(ReadKeyInfo(handle));
        }

        return keys;
    }

    /// <summary>RFC 5649 wrap of <paramref name="dek"/> under the KEK: 40 bytes for a 32-byte key.</summary>
    public byte[] Wrap(ulong kekHandle, ReadOnlySpan<byte> dek)
    {
        ulong dekHandle = ImportDataKey(dek);
        try
        {
            using IMechanism mechanism = _factories.MechanismFactory.Create(CKM.CKM_AES_KEY_WRAP_PAD);
            return _session.WrapKey(mechanism, Handle(kekHandle), Handle(dekHandle));
        }
        finally
        {
            DestroyQuietly(dekHandle);
        }
    }

    /// <summary>
    /// Unwraps into a session object and reads its value into a pinned array the caller zeroes. The result is the
    /// key's actual length (empty if it is longer than a data key), for the caller to reject anything but 32 bytes.
    /// </summary>
    public byte[] Unwrap(ulong kekHandle, byte[] wrapped)
    {
        List<IObjectAttribute> template =
        [
            _factories.ObjectAttributeFactory.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            _factories.ObjectAttributeFactory.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
            _factories.ObjectAttributeFactory.Create(CKA.CKA_TOKEN, false),
            _factories.ObjectAttributeFactory.Create(CKA.CKA_PRIVATE, true),
            // Not sensitive and extractable: the host needs the data key's value, and only for this one read.
            _factories.ObjectAttributeFactory.Create(CKA.CKA_SENSITIVE, false),
            _factories.ObjectAttributeFactory.Create(CKA.CKA_EXTRACTABLE, true),
        ];
        IObjectHandle dek;
        try
        {
            using IMechanism mechanism = _factories.MechanismFactory.Create(CKM.CKM_AES_KEY_WRAP_PAD);
            dek = _session.UnwrapKey(mechanism, Handle(kekHandle), wrapped, template);
        }
        finally
        {
            DisposeAll(template);
        }

        try
        {
            return ReadDataKeyValue(dek.ObjectId);
        }
        finally
        {
            DestroyQuietly(dek.ObjectId);
        }
    }

    /// <summary>Throws <see cref="Pkcs11Exception"/> unless the session and the key handle both still work.</summary>
    public void Probe(ulong kekHandle)
    {
        _ = _session.GetSessionInfo();
        foreach (IObjectAttribute attribute in _session.GetAttributeValue(Handle(kekHandle), [CKA.CKA_KEY_TYPE]))
        {
            attribute.Dispose();
        }
    }

    /// <summary>Throws <see cref="Pkcs11Exception"/> unless the token still answers (SoftHSM2 fails this once its storage is gone).</summary>
    public void ProbeToken() => _ = _slot.GetTokenInfo();

    /// <summary>Generates a new KEK in the token: AES-256, sensitive, never extractable, for wrapping only.</summary>
    public Pkcs11KeyInfo GenerateKek(string label)
    {
        IObjectAttributeFactory a = _factories.ObjectAttributeFactory;
        List<IObjectAttribute> template =
        [
            a.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            a.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
            a.Create(CKA.CKA_VALUE_LEN, (ulong)Pkcs11KeyInfo.RequiredKeyBytes),
            a.Create(CKA.CKA_LABEL, label),
            a.Create(CKA.CKA_TOKEN, true),
            a.Create(CKA.CKA_PRIVATE, true),
            a.Create(CKA.CKA_SENSITIVE, true),
            a.Create(CKA.CKA_EXTRACTABLE, false),
            a.Create(CKA.CKA_WRAP, true),
            a.Create(CKA.CKA_UNWRAP, true),
            a.Create(CKA.CKA_ENCRYPT, false),
            a.Create(CKA.CKA_DECRYPT, false),
            a.Create(CKA.CKA_SIGN, false),
            a.Create(CKA.CKA_VERIFY, false),
            a.Create(CKA.CKA_DERIVE, false),
            // Nobody relabels a version (which would reorder versions) or loosens its usage after the fact.
            a.Create(CKA.CKA_MODIFIABLE, false),
        ];
        try
        {
            using IMechanism mechanism = _factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN);
            return ReadKeyInfo(_session.GenerateKey(mechanism, template));
        }
        finally
        {
            DisposeAll(template);
        }
    }

    public void Destroy(ulong handle) => _session.DestroyObject(Handle(handle));

    /// <summary>Closes the session, ignoring failures: it is being dropped because something already went wrong, or at shutdown.</summary>
    public void CloseQuietly()
    {
        try
        {
            _session.CloseSession();
        }
        catch (Exception ex) when (ex is Pkcs11Exception or ObjectDisposedException)
        {
            // A session of a finalized module or a vanished token is gone already.
        }
    }

    private static void DisposeAll(List<IObjectAttribute> attributes)
    {
        foreach (IObjectAttribute attribute in attributes)
        {
            attribute.Dispose();
        }
    }

    private IObjectHandle Handle(ulong id) => _factories.ObjectHandleFactory.Create(id);

    private Pkcs11KeyInfo ReadKeyInfo(IObjectHandle handle)
    {
        List<IObjectAttribute> values = _session.GetAttributeValue(handle, [.. KeyInfoAttributes]);
        try
        {
            return new Pkcs11KeyInfo(
                handle.ObjectId,
                values[1].CannotBeRead ? "" : values[1].GetValueAsString() ?? "",
                values[0].CannotBeRead ? null : (CKK)values[0].GetValueAsUlong(),
                values[2].CannotBeRead ? 0 : values[2].GetValueAsUlong(),
                Sensitive: Flag(values[3]),
                Extractable: Flag(values[4]),
                Wrap: Flag(values[5]),
                Unwrap: Flag(values[6]),
                Private: Flag(values[7]));
        }
        finally
        {
            DisposeAll(values);
        }

        static bool Flag(IObjectAttribute attribute) => !attribute.CannotBeRead && attribute.GetValueAsBool();
    }

    private ulong ImportDataKey(ReadOnlySpan<byte> dek)
    {
        // A pinned array never moves, so its address can be handed to the module and the bytes zeroed afterwards.
        byte[] value = GC.AllocateArray<byte>(dek.Length, pinned: true);
        dek.CopyTo(value);
        LowLevel.CK_ATTRIBUTE[] template =
        [
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_TOKEN, false),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_PRIVATE, true),
            // Extractable so C_WrapKey may wrap it; it lives only until the wrap returns.
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_SENSITIVE, false),
            LowLevel.CkaUtils.CreateAttribute(CKA.CKA_EXTRACTABLE, true),
            new LowLevel.CK_ATTRIBUTE
            {
                type = (ulong)CKA.CKA_VALUE,
                value = Marshal.UnsafeAddrOfPinnedArrayElement(value, 0),
                valueLen = (ulong)value.Length,
            },
        ];
        try
        {
            ulong handle = 0;
            CKR rv = _lowLevel.C_CreateObject(_session.SessionId, template, (ulong)template.Length, ref handle);
            return rv == CKR.CKR_OK ? handle : throw new Pkcs11Exception("C_CreateObject", rv);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(value);
            for (int i = 0; i < template.Length - 1; i++)
            {
                UnmanagedMemory.Free(ref template[i].value);
            }
        }
    }

    private byte[] ReadDataKeyValue(ulong handle)
    {
        byte[] value = GC.AllocateArray<byte>(DataKeyBytes, pinned: true);
        LowLevel.CK_ATTRIBUTE[] template =
        [
            new LowLevel.CK_ATTRIBUTE
            {
                type = (ulong)CKA.CKA_VALUE,
                value = Marshal.UnsafeAddrOfPinnedArrayElement(value, 0),
                valueLen = DataKeyBytes,
            },
        ];
        CKR rv = _lowLevel.C_GetAttributeValue(_session.SessionId, handle, template, 1);
        if (rv == CKR.CKR_BUFFER_TOO_SMALL)
        {
            CryptographicOperations.ZeroMemory(value);
            return [];
        }

        if (rv != CKR.CKR_OK)
        {
            CryptographicOperations.ZeroMemory(value);
            throw new Pkcs11Exception("C_GetAttributeValue", rv);
        }

        if (template[0].valueLen == DataKeyBytes)
        {
            return value;
        }

        // Shorter than a data key: hand back what it is, for the caller to refuse.
        byte[] shorter = GC.AllocateArray<byte>((int)Math.Min(template[0].valueLen, DataKeyBytes), pinned: true);
        value.AsSpan(0, shorter.Length).CopyTo(shorter);
        CryptographicOperations.ZeroMemory(value);
        return shorter;
    }

    private void DestroyQuietly(ulong handle)
    {
        try
        {
            _lowLevel.C_DestroyObject(_session.SessionId, handle);
        }
        catch (ObjectDisposedException)
        {
            // The module went away; its session objects went with it.
        }
    }
}
