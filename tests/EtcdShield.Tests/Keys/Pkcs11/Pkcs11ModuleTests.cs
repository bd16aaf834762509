using EtcdShield.Keys.Pkcs11;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.Keys.Pkcs11;

[Collection(FakeCryptokiTests.Name)]
public sealed class Pkcs11ModuleTests
{
    [Fact]
    public void A_reinitialization_whose_c_finalize_failed_keeps_the_module_and_its_sessions()
    {
        FakeCryptoki.Reset();
        FakeTimeProvider time = new();
        Pkcs11Module module = Pkcs11Module.Acquire("fake:finalize-fails", FakeCryptoki.Load, time);
        try
        {
            long before = module.Generation;
            FakeCryptoki.FinalizeFails = true;

            // Past the least time between two reinitializations.
            time.Advance(TimeSpan.FromSeconds(2));
            bool reinitialized = module.Reinitialize(before);

            Assert.Equal(1, FakeCryptoki.FinalizeCalls);
            // C_Initialize then answers CKR_CRYPTOKI_ALREADY_INITIALIZED: the module is still up, with the sessions
            // and handles it had, so nothing is dropped (they would leak in the HSM) and calls go on.
            Assert.True(reinitialized);
            Assert.True(FakeCryptoki.Initialized);
            Assert.Equal(before, GenerationOfACall(module));
        }
        finally
        {
            FakeCryptoki.FinalizeFails = false;
            module.Release();
        }

        Assert.False(FakeCryptoki.Initialized);
    }

    private static long GenerationOfACall(Pkcs11Module module)
    {
        using Pkcs11Module.CallScope call = module.EnterCall();
        return call.Generation;
    }
}
