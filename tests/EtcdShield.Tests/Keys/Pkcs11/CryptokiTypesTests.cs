using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EtcdShield.Keys.Pkcs11;
using Interop = Net.Pkcs11Interop.Common;

namespace EtcdShield.Tests.Keys.Pkcs11;

/// <summary>The proxy's Cryptoki numbers against another implementation's (Pkcs11Interop), name by name.</summary>
public sealed class CryptokiTypesTests
{
    [Fact]
    public void Every_name_has_the_standards_number()
    {
        AssertSame<CKR, Interop.CKR>();
        AssertSame<CKA, Interop.CKA>();
        AssertSame<CKO, Interop.CKO>();
        AssertSame<CKK, Interop.CKK>();
        AssertSame<CKM, Interop.CKM>();
        AssertSame<CKU, Interop.CKU>();
        AssertSame<CKS, Interop.CKS>();
    }

    [Fact]
    public void Every_standard_return_code_is_named_in_messages_as_pkcs11interop_named_it()
    {
        // Pkcs11Interop printed the name of any code the standard defines; an operator looks that name up in the HSM's manual.
        foreach (Interop.CKR theirs in Enum.GetValues<Interop.CKR>())
        {
            if (theirs != Interop.CKR.CKR_VENDOR_DEFINED)
            {
                Assert.Equal(theirs.ToString(), Pkcs11Errors.Name((CKR)(ulong)theirs));
            }
        }
    }

    [Fact]
    public void The_flags_have_the_standards_bits()
    {
        Assert.Equal(Interop.CKF.CKF_OS_LOCKING_OK, CryptokiFlags.OsLockingOk);
        Assert.Equal(Interop.CKF.CKF_RW_SESSION, CryptokiFlags.ReadWriteSession);
        Assert.Equal(Interop.CKF.CKF_SERIAL_SESSION, CryptokiFlags.SerialSession);
        Assert.Equal(Interop.CKF.CKF_TOKEN_INITIALIZED, CryptokiFlags.TokenInitialized);
        Assert.Equal(ulong.MaxValue, CryptokiFlags.UnavailableInformation);
    }

    [Fact]
    public void The_structures_have_the_64_bit_unix_layout()
    {
        // pkcs11.h with CK_ULONG of 8 bytes and natural alignment: what the module reads and writes.
        Assert.Equal(24, Unsafe.SizeOf<CkAttribute>());
        Assert.Equal(24, Unsafe.SizeOf<CkMechanism>());
        Assert.Equal(48, Unsafe.SizeOf<CkInitializeArgs>());
        Assert.Equal(32, Unsafe.SizeOf<CkSessionInfo>());
        Assert.Equal(208, Unsafe.SizeOf<CkTokenInfo>());
        Assert.Equal(96, (int)Marshal.OffsetOf<CkTokenInfo>(nameof(CkTokenInfo.Flags)));
        Assert.Equal(184, (int)Marshal.OffsetOf<CkTokenInfo>(nameof(CkTokenInfo.HardwareVersion)));
        Assert.Equal(188, (int)Marshal.OffsetOf<CkTokenInfo>(nameof(CkTokenInfo.UtcTime)));
    }

    private static void AssertSame<TOurs, TTheirs>()
        where TOurs : struct, Enum
        where TTheirs : struct, Enum
    {
        foreach (TOurs ours in Enum.GetValues<TOurs>())
        {
            TTheirs theirs = Enum.Parse<TTheirs>(ours.ToString());
            Assert.Equal(Convert.ToUInt64(theirs, System.Globalization.CultureInfo.InvariantCulture), Convert.ToUInt64(ours, System.Globalization.CultureInfo.InvariantCulture));
        }
    }
}
