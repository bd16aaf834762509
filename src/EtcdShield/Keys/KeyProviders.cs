using EtcdShield.Configuration;
using EtcdShield.Encryption;
using EtcdShield.Keys.KmsV2;
using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Keys;

/// <summary>Turns the key provider flags into the key ring the data-key manager wraps and unwraps with.</summary>
internal static class KeyProviders
{
    /// <summary>
    /// Registers the <see cref="KeyRing"/> for the configured provider and, when <paramref name="followRotation"/>
    /// is set (the proxy), the <see cref="KeyRingRefresher"/> that moves new writes to a rotated KEK: a new KEK
    /// version in the HSM (<c>etcdshield keys rotate</c>) or a new key_id at the KMS plugin. Resolving the ring
    /// validates the provider; failures are <see cref="ConfigurationException"/>s that name the flag to fix.
    /// </summary>
    public static void AddKeyRing(IServiceCollection services, ShieldOptions options, bool followRotation = true)
    {
        if (options.Pkcs11Module is not null)
        {
            Pkcs11Settings settings = Pkcs11Settings.FromOptions(options);
            services.AddSingleton(settings);
            services.AddSingleton(sp => OpenPkcs11(settings, sp.GetRequiredService<ILoggerFactory>()));
            services.AddSingleton(sp => LoadPkcs11KeyRing(sp.GetRequiredService<Pkcs11KeyStore>()));
            if (followRotation)
            {
                AddRefresher(services, sp => sp.GetRequiredService<Pkcs11KeyStore>().LoadKeyRingAsync, settings.RefreshInterval);
            }

            return;
        }

        if (options.KmsPluginEndpoint is { } endpoint)
        {
            services.AddSingleton(_ => new KmsPlugin(endpoint));
            services.AddSingleton(sp => LoadKmsKeyRing(sp.GetRequiredService<KmsPlugin>()));
            if (followRotation)
            {
                AddRefresher(services, sp => sp.GetRequiredService<KmsPlugin>().LoadKeyRingAsync, KmsPlugin.StatusInterval);
            }

            return;
        }

        // The options admit exactly one provider (ServeCommandLine.UpstreamAndKeys), and this is the last.
        var keyFile = options.EncryptionKeyFile!;
        services.AddSingleton(sp => CreateFileKeyRing(keyFile, options.RetiredEncryptionKeyFiles, sp.GetRequiredService<ILoggerFactory>()));
    }

    private static void AddRefresher(IServiceCollection services, Func<IServiceProvider, Func<CancellationToken, Task<KeyRing>>> load, TimeSpan interval)
    {
        services.AddSingleton(sp => new KeyRingRefresher(
            load(sp),
            sp.GetRequiredService<DataKeyManager>(),
            interval,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<KeyRingRefresher>>()));
        services.AddHostedService(sp => sp.GetRequiredService<KeyRingRefresher>());
    }

    private static KeyRing CreateFileKeyRing(string path, IEnumerable<string> retiredFiles, ILoggerFactory loggerFactory)
    {
        var logger = loggerFactory.CreateLogger("EtcdShield.Keys");
        return new KeyRing(
            LoadFile("--encryption-key-file", path, logger),
            retiredFiles.Select(retired => LoadFile("--retired-encryption-key-file", retired, logger)));
    }

    private static FileKeyEncryptionKey LoadFile(string flag, string path, ILogger logger)
    {
        try
        {
            return FileKeyEncryptionKey.Load(path, logger);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"{flag} {path}: {e.Message}", e);
        }
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

    /// <summary>Startup: the plugin must answer Status with a key id, or the proxy refuses to start.</summary>
    private static KeyRing LoadKmsKeyRing(KmsPlugin plugin)
    {
        try
        {
            return plugin.LoadKeyRingAsync(CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (KeyProviderUnavailableException e)
        {
            throw new ConfigurationException($"--kms-plugin-endpoint {plugin.Endpoint}: {e.Message}", e);
        }
    }
}
