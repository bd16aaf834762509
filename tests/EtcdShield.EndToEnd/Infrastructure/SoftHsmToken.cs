namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// A freshly initialised SoftHSM2 token in its own temporary directory, so tests never see (or leave)
/// objects in the machine's token store. Every tool or process that should use it needs <see cref="Environment"/>.
/// </summary>
internal sealed class SoftHsmToken : IDisposable
{
    public const string ModulePath = "/usr/lib/softhsm/libsofthsm2.so";
    public const string SoftHsmUtilPath = "/usr/bin/softhsm2-util";
    public const string Pkcs11ToolPath = "/usr/bin/pkcs11-tool";

    private readonly DirectoryInfo root;

    private SoftHsmToken(DirectoryInfo root, string label, string pin, string soPin)
    {
        this.root = root;
        Label = label;
        Pin = pin;
        SoPin = soPin;
        ConfPath = Path.Combine(root.FullName, "softhsm2.conf");
        TokenDirectory = Path.Combine(root.FullName, "tokens");
        PinFile = Path.Combine(root.FullName, "pin");
        Environment = new Dictionary<string, string?> { ["SOFTHSM2_CONF"] = ConfPath };
    }

    public string Label { get; }

    public string Pin { get; }

    public string SoPin { get; }

    public string ConfPath { get; }

    public string TokenDirectory { get; }

    /// <summary>The user PIN alone (no newline), readable only by the owner.</summary>
    public string PinFile { get; }

    /// <summary>Points SoftHSM at this token's configuration; pass to <see cref="ExternalCommand"/> or set on a host.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; }

    public static async Task<SoftHsmToken> CreateAsync(
        string label = "etcdshield-test",
        string pin = "123456",
        string soPin = "654321",
        CancellationToken cancellationToken = default)
    {
        var token = new SoftHsmToken(Directory.CreateTempSubdirectory("etcdshield-softhsm-"), label, pin, soPin);
        try
        {
            Directory.CreateDirectory(token.TokenDirectory);
            await File.WriteAllTextAsync(
                token.ConfPath,
                $"directories.tokendir = {token.TokenDirectory}\nobjectstore.backend = file\nlog.level = ERROR\n",
                cancellationToken);
            await File.WriteAllTextAsync(token.PinFile, pin, cancellationToken);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(token.PinFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            var result = await ExternalCommand.RunAsync(
                SoftHsmUtilPath,
                ["--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPin],
                environment: token.Environment,
                cancellationToken: cancellationToken);
            result.EnsureSuccess();
            return token;
        }
        catch
        {
            token.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Generates an AES key on the token: sensitive and, because --extractable is not given,
    /// never extractable, as a key-encryption key must be. The result carries pkcs11-tool's error if it fails.
    /// </summary>
    /// <param name="extraArguments">More pkcs11-tool flags, e.g. <c>--id 01</c> or <c>--usage-decrypt</c>.</param>
    public Task<CommandResult> CreateAesKeyAsync(string label, int sizeBytes = 32, IEnumerable<string>? extraArguments = null, CancellationToken cancellationToken = default) =>
        RunPkcs11ToolAsync(
            [
                "--keygen", "--key-type", $"AES:{sizeBytes}", "--label", label, "--sensitive", "--usage-wrap",
                .. extraArguments ?? [],
            ],
            cancellationToken);

    /// <summary>pkcs11-tool's listing of the token's objects after login (secret keys need it to be shown).</summary>
    public Task<CommandResult> ListObjectsAsync(CancellationToken cancellationToken = default) =>
        RunPkcs11ToolAsync(["--list-objects"], cancellationToken);

    /// <summary>Runs pkcs11-tool against this token, logged in as the user.</summary>
    public Task<CommandResult> RunPkcs11ToolAsync(IEnumerable<string> arguments, CancellationToken cancellationToken = default) =>
        ExternalCommand.RunAsync(
            Pkcs11ToolPath,
            ["--module", ModulePath, "--token-label", Label, "--login", "--pin", Pin, .. arguments],
            environment: Environment,
            cancellationToken: cancellationToken);

    public void Dispose()
    {
        try
        {
            root.Delete(recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp directory must not fail the test that used it.
        }
    }
}
