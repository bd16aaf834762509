using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.EndToEnd.Keys;

/// <summary>
/// SoftHSM2 loaded into this test process, for tests that run the PKCS#11 provider in-process (proxies started by
/// <see cref="ShieldServer"/>, the <c>keys</c> command run as a method).
/// </summary>
/// <remarks>
/// SoftHSM reads SOFTHSM2_CONF once, at the first C_Initialize in the process, and a module is initialized once per
/// process: so one configuration and token directory serves the whole test run, set in the process environment
/// before anything loads the module, and each test gets its own token (a distinct label) in it. Tokens are
/// initialized through the loaded module (C_InitToken on its free slot), because SoftHSM does not see tokens
/// that another process (softhsm2-util) creates after C_Initialize. External tools (pkcs11-tool) get the same
/// SOFTHSM2_CONF and see everything on disk. The fixture holds a reference to the module for the whole run, so it
/// is never finalized between tests. Every class using it is in <see cref="SoftHsmTests"/>, which runs them one
/// after another: the outage test takes a token away and reinitializes the module under everyone.
/// Do not use <see cref="SoftHsmToken"/> (a configuration per token) for in-process PKCS#11 tests.
/// </remarks>
public sealed class SoftHsmInProcess : IDisposable
{
    public const string SoPin = "654321";
    public const string Pin = "123456";

    private readonly DirectoryInfo _root;
    private readonly Pkcs11Module _module;
    private readonly Lock _initializing = new();
    private readonly SoftHsmAdministration _administration;

    public SoftHsmInProcess()
    {
        _root = Directory.CreateTempSubdirectory("etcdshield-softhsm-shared-");
        ConfPath = Path.Combine(_root.FullName, "softhsm2.conf");
        TokenDirectory = Path.Combine(_root.FullName, "tokens");
        Directory.CreateDirectory(TokenDirectory);
        File.WriteAllText(ConfPath, $"directories.tokendir = {TokenDirectory}\nobjectstore.backend = file\nlog.level = ERROR\n");
        // Both copies: .NET's own (child processes inherit it) and the C library's, which SoftHSM reads with
        // getenv(). Environment.SetEnvironmentVariable alone does not reach the latter on Unix.
        System.Environment.SetEnvironmentVariable("SOFTHSM2_CONF", ConfPath);
        if (NativeMethods.setenv("SOFTHSM2_CONF", ConfPath, 1) != 0)
        {
            throw new InvalidOperationException("setenv(SOFTHSM2_CONF) failed");
        }

        Environment = new Dictionary<string, string?> { ["SOFTHSM2_CONF"] = ConfPath };
        _module = Pkcs11Module.Acquire(SoftHsmToken.ModulePath);
        _administration = new SoftHsmAdministration(SoftHsmToken.ModulePath);
    }

    public string ConfPath { get; }

    public string TokenDirectory { get; }

    /// <summary>For external tools (pkcs11-tool, the EtcdShield executable): the same configuration.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; }

    internal Pkcs11Module Module => _module;

    /// <summary>The tests' own calls into the module (Pkcs11Interop), for what the proxy never does.</summary>
    internal SoftHsmAdministration Administration => _administration;

    /// <summary>Initializes a new token with a unique label and the user PIN <see cref="Pin"/>.</summary>
    internal InProcessToken CreateToken(string prefix = "keys")
    {
        string label = $"{prefix}-{Guid.NewGuid():N}"[..24];
        lock (_initializing)
        {
            // Under a call scope, so the outage test's reinitialization of the module cannot run meanwhile.
            using Pkcs11Module.CallScope call = _module.EnterCall();
            _administration.InitializeToken(label, SoPin, Pin);
        }

        return new InProcessToken(this, label, Path.Combine(_root.FullName, $"{label}.pin"));
    }

    public void Dispose()
    {
        _administration.Dispose();
        _module.Release();
        try
        {
            _root.Delete(recursive: true);
        }
        catch (IOException)
        {
            // Best effort, as for every temporary directory of the test run.
        }
    }

    private static class NativeMethods
    {
        [DllImport("libc", EntryPoint = "setenv", BestFitMapping = false, ThrowOnUnmappableChar = true)]
        [SuppressMessage("Interoperability", "SYSLIB1054", Justification = "LibraryImport needs unsafe code, which this project does not allow.")]
        public static extern int setenv(
            [MarshalAs(UnmanagedType.LPUTF8Str)] string name,
            [MarshalAs(UnmanagedType.LPUTF8Str)] string value,
            int overwrite);
    }
}

/// <summary>The in-process SoftHSM tests: one after another, sharing <see cref="SoftHsmInProcess"/>.</summary>
[CollectionDefinition(Name)]
public sealed class SoftHsmTests : ICollectionFixture<SoftHsmInProcess>
{
    public const string Name = "SoftHSM in process";
}

/// <summary>One test's token in the shared SoftHSM directory.</summary>
internal sealed class InProcessToken
{
    private readonly SoftHsmInProcess _hsm;

    internal InProcessToken(SoftHsmInProcess hsm, string label, string pinFile)
    {
        _hsm = hsm;
        Label = label;
        PinFile = pinFile;
        File.WriteAllText(pinFile, SoftHsmInProcess.Pin + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(pinFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    public string Label { get; }

    /// <summary>The user PIN with a trailing newline, as `echo` writes it (the provider trims it).</summary>
    public string PinFile { get; }

    /// <summary>The token's own directory under the shared token directory (SoftHSM names it by a UUID).</summary>
    public string Directory => System.IO.Directory.GetDirectories(_hsm.TokenDirectory)
        .Single(d => File.Exists(Path.Combine(d, "token.object")) &&
            File.ReadAllBytes(Path.Combine(d, "token.object")).AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(Label)) >= 0);

    internal Pkcs11Settings Settings(string keyLabel) => new()
    {
        ModulePath = SoftHsmToken.ModulePath,
        TokenLabel = Label,
        PinFile = PinFile,
        KeyLabel = keyLabel,
    };

    /// <summary>The proxy's (and the keys command's) flags for this token.</summary>
    public IReadOnlyList<string> Flags(string keyLabel) =>
        ["--pkcs11-module", SoftHsmToken.ModulePath, "--pkcs11-token-label", Label, "--pkcs11-pin-file", PinFile, "--pkcs11-key-label", keyLabel];

    /// <summary>Generates an AES key with exactly the given flags, for keys pkcs11-tool cannot make (it leaves SoftHSM's
    /// defaults, wrap and unwrap included, in place).</summary>
    public void GenerateAesKey(string keyLabel, int bytes, bool sensitive, bool wrap, bool unwrap)
    {
        using Pkcs11Module.CallScope call = _hsm.Module.EnterCall();
        _hsm.Administration.GenerateAesKey(Label, SoftHsmInProcess.Pin, keyLabel, bytes, sensitive, wrap, unwrap);
    }

    /// <summary>pkcs11-tool against this token, logged in as the user, in a process of its own.</summary>
    public Task<CommandResult> Pkcs11ToolAsync(params string[] arguments) =>
        ExternalCommand.RunAsync(
            SoftHsmToken.Pkcs11ToolPath,
            ["--module", SoftHsmToken.ModulePath, "--token-label", Label, "--login", "--pin", SoftHsmInProcess.Pin, .. arguments],
            environment: _hsm.Environment);

    /// <summary>An operator's KEK as the docs tell them to make it: AES-256, sensitive, wrap/unwrap usage.</summary>
    public Task<CommandResult> OperatorKeyAsync(string keyLabel, params string[] extra) =>
        Pkcs11ToolAsync(["--keygen", "--key-type", "AES:32", "--label", keyLabel, .. extra]);
}
