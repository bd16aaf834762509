using EtcdShield.Configuration;
using EtcdShield.Keys.KmsV2;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EtcdShield.Keys;

/// <summary>Turns the key provider flags into the key ring the data-key manager wraps and unwraps with.</summary>
internal static class KeyProviders
{
    /// <summary>Registers what the configured provider needs besides the key ring (a plugin connection, a watcher).</summary>
    public static void AddProviderServices(IServiceCollection services, ShieldOptions options, bool watchForRotation)
    {
        if (options.KmsPluginEndpoint is { } endpoint)
        {
            services.AddSingleton(_ => new KmsPlugin(endpoint));
            if (watchForRotation)
            {
                services.AddSingleton<KmsKeyWatcher>();
                services.AddHostedService(sp => sp.GetRequiredService<KmsKeyWatcher>());
            }
        }
    }

    public static KeyRing CreateKeyRing(ShieldOptions options, IServiceProvider services)
    {
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("EtcdShield.Keys");
        if (options.KmsPluginEndpoint is { } endpoint)
        {
            var plugin = services.GetRequiredService<KmsPlugin>();
            try
            {
                var status = plugin.StatusAsync(CancellationToken.None).GetAwaiter().GetResult();
                if (string.IsNullOrEmpty(status.KeyId))
                {
                    throw new ConfigurationException($"--kms-plugin-endpoint {endpoint}: the plugin reports no key_id");
                }

                return plugin.RingFor(status.KeyId, []);
            }
            catch (Grpc.Core.RpcException e)
            {
                throw new ConfigurationException($"--kms-plugin-endpoint {endpoint}: the plugin does not answer Status: {e.StatusCode}: {e.Status.Detail}", e);
            }
        }

        if (options.EncryptionKeyFile is { } path)
        {
            return new KeyRing(
                LoadFile("--encryption-key-file", path, logger),
                options.RetiredEncryptionKeyFiles.Select(retired => LoadFile("--retired-encryption-key-file", retired, logger)));
        }

        throw new ConfigurationException("this key provider is not available yet; use --encryption-key-file or --no-encryption");
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
}
