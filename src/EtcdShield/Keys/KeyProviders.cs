using EtcdShield.Configuration;
using EtcdShield.Keys.Pkcs11;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EtcdShield.Keys;

/// <summary>Turns the key provider flags into the key ring the data-key manager wraps and unwraps with.</summary>
internal static class KeyProviders
{
    /// <summary>
    /// Registers the <see cref="KeyRing"/> for the configured provider, and for PKCS#11 the token's key store
    /// and the <see cref="KeyRingRefresher"/> that follows <c>etcdshield keys rotate</c>. Resolving the ring
    /// validates the provider; failures are <see cref="ConfigurationException"/>s that name the flag to fix.
    /// </summary>
    public static void AddKeyRing(IServiceCollection services, ShieldOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Pkcs11Module is null)
        {
            services.AddSingleton(sp => CreateKeyRing(options, sp.GetRequiredService<ILoggerFactory>()));
            return;
        }

        Pkcs11Settings settings = Pkcs11Settings.FromOptions(options);
        services.AddSingleton(settings);
        services.AddSingleton(sp => OpenPkcs11(settings, sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton(sp => LoadPkcs11KeyRing(sp.GetRequiredService<Pkcs11KeyStore>()));
        services.AddSingleton(sp => new KeyRingRefresher(
            sp.GetRequiredService<Pkcs11KeyStore>().LoadKeyRingAsync,
            sp.GetRequiredService<DataKeyManager>(),
            settings.RefreshInterval,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<KeyRingRefresher>>()));
        services.AddHostedService(sp => sp.GetRequiredService<KeyRingRefresher>());
    }

    public static KeyRing CreateKeyRing(ShieldOptions options, ILoggerFactory loggerFactory)
    {
        var logger = loggerFactory.CreateLogger("EtcdShield.Keys");
        if (options.EncryptionKeyFile is { } path)
        {
            try
            {
                return new KeyRing(FileKeyEncryptionKey.Load(path, logger));
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                throw new ConfigurationException($"--encryption-key-file {path}: {e.Message}", e);
            }
        }

        if (options.Pkcs11Module is not null)
        {
            throw new ConfigurationException("the PKCS#11 key ring is registered by AddKeyRing, which follows key rotation");
        }

        throw new ConfigurationException("this key provider is not available yet; use --pkcs11-module, --encryption-key-file or --no-encryption");
    }

    private static Pkcs11KeyStore OpenPkcs11(Pkcs11Settings settings, ILoggerFactory loggerFactory)
    {
        try
        {
            return Pkcs11KeyStore.Open(settings, readWrite: false, loggerFactory.CreateLogger("EtcdShield.Keys.Pkcs11"));
        }
        catch (KeyProviderUnavailableException e)
        {
            throw new ConfigurationException(e.Message, e);
        }
    }

    /// <summary>Startup: finds and checks the KEK, and proves one wrap and unwrap, or refuses to start.</summary>
    private static KeyRing LoadPkcs11KeyRing(Pkcs11KeyStore store)
    {
        try
        {
            KeyRing ring = store.LoadKeyRing();
            store.ProveRoundTrip(ring);
            return ring;
        }
        catch (KeyProviderUnavailableException e)
        {
            throw new ConfigurationException(e.Message, e);
        }
    }
}
