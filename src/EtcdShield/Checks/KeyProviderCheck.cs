using System.Security.Cryptography;
using EtcdShield.Configuration;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using EtcdShield.Keys.KmsV2;
using EtcdShield.Keys.Pkcs11;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Checks;

/// <summary>
/// The key provider answers, through the classes the proxy uses: the HSM (module, token, PIN, the KEK's attributes, a
/// wrap and unwrap), the KMS plugin (Status, a wrap and unwrap), or the development key file. Stricter than start-up
/// in one point: an extractable KEK fails here, because anyone with the PIN could export it.
/// </summary>
internal static class KeyProviderCheck
{
    /// <summary>The name of the check's first line for the configured provider, which a time-out is reported under.</summary>
    public static string NameFor(ShieldOptions options) =>
        options.NoEncryption ? "encryption"
        : options.Pkcs11Module is not null ? "pkcs11"
        : options.KmsPluginEndpoint is not null ? "kms"
        : options.EncryptionKeyFile is not null ? "key-file"
        : "encryption";

    public static async Task RunAsync(ShieldOptions options, CheckReport report, CancellationToken cancellationToken)
    {
        if (!options.NoEncryption)
        {
            Prefixes(options, report);
        }

        if (options.NoEncryption)
        {
            report.Warn("encryption", "--no-encryption: values are stored in etcd exactly as clients send them, unencrypted");
        }
        else if (options.Pkcs11Module is not null)
        {
            Pkcs11(options, report);
        }
        else if (options.KmsPluginEndpoint is { } endpoint)
        {
            await KmsAsync(endpoint, report, cancellationToken).ConfigureAwait(false);
        }
        else if (options.EncryptionKeyFile is { } file)
        {
            KeyFiles(file, options.RetiredEncryptionKeyFiles, report);
        }
        else
        {
            report.Fail("encryption", "no key provider: give --pkcs11-module, --kms-plugin-endpoint or (development only) --encryption-key-file, or --no-encryption");
        }
    }

    /// <summary>The prefixes as start-up builds them (ShieldHost), which refuses a legacy prefix no encrypted prefix covers.</summary>
    private static void Prefixes(ShieldOptions options, CheckReport report)
    {
        try
        {
            _ = EncryptionOptions.FromUtf8(options.EncryptPrefixes, options.LegacyPlaintextPrefixes, options.MaxRequestBytes, options.RollbackProtectionPrefixes, options.LegacyUnboundPrefixes);
        }
        catch (ArgumentException e)
        {
            report.Fail("encryption", $"{e.Message}; the proxy refuses to start with these --encrypt-prefix/--legacy-plaintext-prefix/--rollback-protection-prefix/--legacy-unbound-prefix/--max-request-bytes");
        }
    }

    private static void Pkcs11(ShieldOptions options, CheckReport report)
    {
        const string name = "pkcs11";
        Pkcs11KeyStore store;
        try
        {
            store = Pkcs11KeyStore.Open(Pkcs11Settings.FromOptions(options), readWrite: false, NullLogger.Instance);
        }
        catch (Exception e) when (e is ConfigurationException or KeyProviderUnavailableException)
        {
            report.Fail(name, $"{e.Message}; --pkcs11-module must be the HSM vendor's PKCS#11 library");
            return;
        }

        using (store)
        {
            var settings = store.Settings;
            IReadOnlyList<Pkcs11KekVersion> versions;
            try
            {
                // Opens a session and logs in: the token is found and takes the PIN, or this says which is not.
                versions = store.ListVersions();
            }
            catch (KeyProviderUnavailableException e)
            {
                // The store's messages name the token and the flag to fix (a missing token, a refused PIN).
                report.Fail(name, e.Message);
                return;
            }

            report.Ok(name, $"module {settings.ModulePath} loads, {settings.TokenDescription} is present and the PIN in --pkcs11-pin-file logs in");
            if (versions.Count == 0)
            {
                report.Fail("pkcs11-kek", $"no secret key labelled \"{settings.KeyLabel}\" (or \"{settings.KeyLabel}#N\") in {settings.TokenDescription}; create it with: etcdshield keys create --pkcs11-key-label {settings.KeyLabel} ...");
                return;
            }

            var current = versions[^1];
            var key = current.Key;
            if (key.Problem() is { } problem)
            {
                report.Fail("pkcs11-kek", $"{problem}; the proxy refuses to start with it");
                return;
            }

            if (key.Extractable)
            {
                report.Fail("pkcs11-kek", $"key \"{key.Label}\" is extractable (CKA_EXTRACTABLE=true): anyone with the PIN can export it wrapped under a key of their own; make a non-extractable version with etcdshield keys rotate, then etcdshield migrate");
            }
            else
            {
                report.Ok("pkcs11-kek", $"key \"{key.Label}\" (version {current.Version}, the current of {versions.Count}): AES-256, CKA_SENSITIVE=true, CKA_EXTRACTABLE=false, may wrap and unwrap");
            }

            if (!key.Private)
            {
                report.Warn("pkcs11-kek", $"key \"{key.Label}\" is a public object (CKA_PRIVATE=false): the token may let sessions use it without the PIN");
            }

            try
            {
                var ring = store.LoadKeyRing();
                store.ProveRoundTrip(ring);
                report.Ok("pkcs11-wrap", $"the token wrapped and unwrapped a random data key with \"{key.Label}\"");
            }
            catch (KeyProviderUnavailableException e)
            {
                report.Fail("pkcs11-wrap", $"{e.Message}; the token must offer AES key wrap with padding (CKM_AES_KEY_WRAP_PAD) for this key");
            }
        }
    }

    private static async Task KmsAsync(string endpoint, CheckReport report, CancellationToken cancellationToken)
    {
        const string name = "kms";
        KmsPlugin plugin;
        try
        {
            plugin = new KmsPlugin(endpoint);
        }
        catch (ConfigurationException e)
        {
            report.Fail(name, e.Message);
            return;
        }

        using (plugin)
        {
            KeyRing ring;
            try
            {
                var status = await plugin.StatusAsync(cancellationToken).ConfigureAwait(false);
                report.Ok(name, $"plugin at {endpoint} answers Status: version {status.Version}, healthz '{status.Healthz}', key id '{status.KeyId}'");
                // The start-up path, which refuses a plugin that is not healthy or names no key.
                ring = await plugin.LoadKeyRingAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                report.Fail(name, $"KMS plugin {endpoint} does not answer Status ({e.StatusCode}: {e.Status.Detail}); start the plugin or fix --kms-plugin-endpoint");
                return;
            }
            catch (KeyProviderUnavailableException e)
            {
                report.Fail(name, $"{e.Message}; the plugin must report healthz 'ok' and a key id");
                return;
            }

            await RoundTripAsync("kms-wrap", ring.Current, report, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task RoundTripAsync(string name, IKeyEncryptionKey kek, CheckReport report, CancellationToken cancellationToken)
    {
        var probe = RandomNumberGenerator.GetBytes(32);
        try
        {
            var wrapped = await kek.WrapAsync(probe, cancellationToken).ConfigureAwait(false);
            var unwrapped = await kek.UnwrapAsync(wrapped, cancellationToken).ConfigureAwait(false);
            if (CryptographicOperations.FixedTimeEquals(unwrapped, probe))
            {
                report.Ok(name, $"wrapped and unwrapped a random data key with {kek.Id}");
            }
            else
            {
                report.Fail(name, $"{kek.Id} unwrapped a different key than it wrapped; the provider is broken");
            }

            CryptographicOperations.ZeroMemory(unwrapped);
        }
        catch (Exception e) when (e is KeyProviderUnavailableException or KeyUnwrapException or RpcException)
        {
            report.Fail(name, $"{kek.Id} cannot wrap and unwrap a data key: {e.Message}");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(probe);
        }
    }

    private static void KeyFiles(string file, IReadOnlyList<string> retired, CheckReport report)
    {
        const string name = "key-file";
        foreach (var (flag, path) in retired.Select(r => ("--retired-encryption-key-file", r)).Prepend(("--encryption-key-file", file)))
        {
            try
            {
                using var kek = FileKeyEncryptionKey.Load(path, NullLogger.Instance);
                report.Warn(name, $"{flag} {path} holds a 32-byte key ({kek.Id}); a key in a file is for development only: use --pkcs11-module or --kms-plugin-endpoint in production");
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                report.Fail(name, $"{flag} {path}: {e.Message}");
            }
        }
    }
}
