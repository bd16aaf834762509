using EtcdShield.LoadGen.Infrastructure;

namespace EtcdShield.LoadGen.Targets;

/// <summary>
/// How the encrypting target gets its KEK. The PKCS#11 provider is the production path, so it is used whenever the
/// built proxy accepts it; a build without it yet falls back to the development key file, and the results say which
/// one was measured and why.
/// </summary>
internal sealed class KeyProviderSetup
{
    private KeyProviderSetup(string provider, string detail, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        Provider = provider;
        Detail = detail;
        Arguments = arguments;
        Environment = environment;
    }

    /// <summary>"pkcs11-softhsm2" or "encryption-key-file".</summary>
    public string Provider { get; }

    /// <summary>Why this provider, for the results.</summary>
    public string Detail { get; }

    public IReadOnlyList<string> Arguments { get; }

    public IReadOnlyDictionary<string, string> Environment { get; }

    public static async Task<KeyProviderSetup> ChooseAsync(ShieldBinary shield, BenchPki pki, string directory, string logDirectory)
    {
        Directory.CreateDirectory(directory);
        var keyFile = Path.Combine(directory, "kek.b64");
        await File.WriteAllTextAsync(keyFile, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))).ConfigureAwait(false);
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var fileArguments = new[] { "--encryption-key-file", keyFile };
        var noEnvironment = new Dictionary<string, string>();

        if (!SoftHsmToken.IsInstalled)
        {
            return new KeyProviderSetup("encryption-key-file", $"{SoftHsmToken.ModulePath} is not installed", fileArguments, noEnvironment);
        }

        SoftHsmToken token;
        try
        {
            token = await SoftHsmToken.CreateAsync(Path.Combine(directory, "softhsm")).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or OperationCanceledException)
        {
            return new KeyProviderSetup("encryption-key-file", "SoftHSM2 token setup failed: " + FirstLine(e.Message), fileArguments, noEnvironment);
        }

        string[] pkcs11Arguments =
        [
            "--pkcs11-module", SoftHsmToken.ModulePath,
            "--pkcs11-token-label", SoftHsmToken.TokenLabel,
            "--pkcs11-pin-file", token.PinFile,
            "--pkcs11-key-label", SoftHsmToken.KeyLabel,
        ];

        // The probe is a real start: only a proxy that loads the module, logs in and finds the key says it is ready.
        // Its upstream is a closed port, which the proxy does not need in order to start.
        try
        {
            var probe = await shield.StartAsync(
                "EtcdShield PKCS#11 probe",
                pki,
                upstream: new Uri("http://127.0.0.1:" + FreePorts.Take(1)[0]),
                pkcs11Arguments,
                token.Environment,
                Path.Combine(logDirectory, "pkcs11-probe.log")).ConfigureAwait(false);
            probe.Dispose();
            return new KeyProviderSetup(
                "pkcs11-softhsm2",
                $"SoftHSM2 token '{SoftHsmToken.TokenLabel}', AES-256 KEK '{SoftHsmToken.KeyLabel}' (sensitive, wrap-only) made with pkcs11-tool",
                pkcs11Arguments,
                token.Environment);
        }
        catch (InvalidOperationException e)
        {
            var reason = e.Message.Split('\n').Select(l => l.Trim()).LastOrDefault(l => l.StartsWith("etcdshield:", StringComparison.Ordinal))
                ?? FirstLine(e.Message);
            return new KeyProviderSetup("encryption-key-file", "this build refused --pkcs11-module: " + reason, fileArguments, noEnvironment);
        }
    }

    private static string FirstLine(string text) => text.Split('\n')[0].Trim();
}
