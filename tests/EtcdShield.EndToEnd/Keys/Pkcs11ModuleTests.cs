using System.Security.Cryptography;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Encryption;
using EtcdShield.Keys.Pkcs11;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.EndToEnd.Keys;

/// <summary>Reinitializing the shared PKCS#11 module (C_Finalize, C_Initialize) against a real SoftHSM2, in process.</summary>
[Collection(SoftHsmTests.Name)]
public sealed class Pkcs11ModuleTests(SoftHsmInProcess hsm)
{
    [Fact]
    public async Task A_reinitialization_that_failed_is_tried_again_and_the_provider_recovers()
    {
        var token = hsm.CreateToken();
        using var store = Pkcs11KeyStore.Open(token.Settings("kek"), readWrite: true, NullLogger.Instance);
        store.CreateVersion(rotate: false);
        var kek = store.LoadKeyRing().Current;
        var dek = RandomNumberGenerator.GetBytes(32);

        // Without its token directory SoftHSM2 loses every token, and C_Initialize fails (CKR_GENERAL_ERROR), as a
        // network HSM's client does while the HSM is unreachable: the provider's reinitialization leaves the module down.
        var away = hsm.TokenDirectory + ".away";
        Directory.Move(hsm.TokenDirectory, away);
        try
        {
            // Reinitializations are at least a second apart, so the first calls may only find the token gone.
            await Eventually.HoldsAsync(
                async () =>
                {
                    await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => kek.WrapAsync(dek, default).AsTask());
                    return ModuleIsDown();
                },
                down => down,
                TimeSpan.FromSeconds(30));
        }
        finally
        {
            Directory.Move(away, hsm.TokenDirectory);
        }

        // Back: later calls initialize the module again, no restart.
        var wrapped = await Eventually.HoldsAsync(
            async () =>
            {
                try
                {
                    return await kek.WrapAsync(dek, default);
                }
                catch (KeyProviderUnavailableException)
                {
                    return null;
                }
            },
            w => w is not null,
            TimeSpan.FromSeconds(30));
        Assert.Equal(dek, await kek.UnwrapAsync(wrapped!, default));
    }

    private bool ModuleIsDown()
    {
        try
        {
            using Pkcs11Module.CallScope call = hsm.Module.EnterCall();
            return false;
        }
        catch (KeyProviderUnavailableException)
        {
            return true;
        }
    }
}
