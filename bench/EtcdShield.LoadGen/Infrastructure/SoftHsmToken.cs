using System.Diagnostics;

namespace EtcdShield.LoadGen.Infrastructure;

/// <summary>
/// A SoftHSM2 token of the run's own (SOFTHSM2_CONF points at a temporary token directory, so the machine's token
/// store is neither read nor changed) holding one AES-256 key-encryption key that is sensitive and wrap-only.
/// </summary>
internal sealed class SoftHsmToken
{
    public const string ModulePath = "/usr/lib/softhsm/libsofthsm2.so";
    public const string TokenLabel = "etcdshield-bench";
    public const string KeyLabel = "kek";
    private const string Pin = "98765432";
    private const string SoPin = "12345678";

    private SoftHsmToken(string directory)
    {
        ConfFile = Path.Combine(directory, "softhsm2.conf");
        PinFile = Path.Combine(directory, "pin");
        Environment = new Dictionary<string, string> { ["SOFTHSM2_CONF"] = ConfFile };
    }

    public string ConfFile { get; }

    public string PinFile { get; }

    /// <summary>What every process that opens the token needs.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; }

    public static bool IsInstalled => File.Exists(ModulePath);

    /// <summary>Initialises the token and generates the KEK; the exception says which tool failed and why.</summary>
    public static async Task<SoftHsmToken> CreateAsync(string directory)
    {
        Directory.CreateDirectory(Path.Combine(directory, "tokens"));
        var token = new SoftHsmToken(directory);
        await File.WriteAllTextAsync(
            token.ConfFile,
            $"directories.tokendir = {Path.Combine(directory, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n").ConfigureAwait(false);
        await File.WriteAllTextAsync(token.PinFile, Pin).ConfigureAwait(false);
        File.SetUnixFileMode(token.PinFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        await token.RunAsync("softhsm2-util", ["--init-token", "--free", "--label", TokenLabel, "--pin", Pin, "--so-pin", SoPin]).ConfigureAwait(false);
        await token.RunAsync(
            "pkcs11-tool",
            [
                "--module", ModulePath, "--token-label", TokenLabel, "--login", "--pin", Pin,
                "--keygen", "--key-type", "AES:32", "--label", KeyLabel, "--sensitive", "--usage-wrap",
            ]).ConfigureAwait(false);
        return token;
    }

    private async Task RunAsync(string tool, string[] arguments)
    {
        var info = new ProcessStartInfo(tool)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in Environment)
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{tool} did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{tool} failed ({process.ExitCode}): {await error.ConfigureAwait(false)}{await output.ConfigureAwait(false)}");
        }
    }
}
