using EtcdShield.Configuration;
using Microsoft.Extensions.Logging;

namespace EtcdShield.Keys;

/// <summary>Turns the key provider flags into the key ring the data-key manager wraps and unwraps with.</summary>
internal static class KeyProviders
{
    public static KeyRing CreateKeyRing(ShieldOptions options, ILoggerFactory loggerFactory)
    {
        var logger = loggerFactory.CreateLogger("EtcdShield.Keys");
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
