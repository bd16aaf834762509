using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Tests.Keys.Pkcs11;

[Collection(FakeCryptokiTests.Name)]
public sealed class Pkcs11ModuleTests
{
    [Fact]
    public async Task A_reinitialization_whose_c_finalize_failed_keeps_the_module_and_its_sessions()
    {
        FakeCryptoki.Reset();
        Pkcs11Module module = Pkcs11Module.Acquire("fake:finalize-fails", FakeCryptoki.Load);
        try
        {
            long before = module.Generation;
            FakeCryptoki.FinalizeFails = true;

            // Reinitializations are at least a second apart: poll until one has run.
            bool reinitialized = false;
            using CancellationTokenSource deadline = new(TimeSpan.FromSeconds(30));
            while (FakeCryptoki.FinalizeCalls == 0)
            {
                reinitialized = module.Reinitialize(before);
                await Task.Delay(TimeSpan.FromMilliseconds(50), deadline.Token);
            }

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
