using EtcdShield.Checks;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.Tests.Checks;

// File modes are what these tests are about, and the proxy runs on Linux.
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class KeyProviderCheckTests : IDisposable
{
    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    private string KeyFile(int bytes)
    {
        var path = Path.Combine(_pki.Directory, $"key-{bytes}");
        File.WriteAllText(path, Convert.ToBase64String(new byte[bytes].Select((_, i) => (byte)(i + 1)).ToArray()) + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    [Fact]
    public async Task A_development_key_file_of_32_bytes_passes_with_a_warning_and_its_bytes_are_not_shown()
    {
        var path = KeyFile(32);
        var encoded = File.ReadAllText(path).Trim();

        var lines = await Checked.LinesAsync(r => KeyProviderCheck.RunAsync(Checked.Serving(_pki) with { EncryptionKeyFile = path }, r, CancellationToken.None));

        var warning = Assert.Single(lines);
        Assert.Equal(CheckStatus.Warn, warning.Status);
        Assert.Matches($"^--encryption-key-file {path} holds a 32-byte key \\(file:[0-9a-f]{{16}}\\); a key in a file is for development only", warning.Detail);
        Assert.DoesNotContain(encoded, warning.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_legacy_plaintext_prefix_outside_every_encrypted_prefix_fails_as_serve_refuses_it()
    {
        var options = Checked.Serving(_pki) with { EncryptionKeyFile = KeyFile(32), EncryptPrefixes = ["/registry/secrets/"], LegacyPlaintextPrefixes = ["/other/"] };

        var lines = await Checked.LinesAsync(r => KeyProviderCheck.RunAsync(options, r, CancellationToken.None));

        var failure = Checked.Single(lines, CheckStatus.Fail);
        Assert.Equal("encryption", failure.Check);
        Assert.StartsWith("Legacy plaintext prefix \"/other/\" does not overlap any encrypted prefix", failure.Detail, StringComparison.Ordinal);
        Assert.EndsWith("; the proxy refuses to start with these --encrypt-prefix/--legacy-plaintext-prefix/--rollback-protection-prefix/--legacy-unbound-prefix/--max-request-bytes", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_file_of_the_wrong_length_fails()
    {
        var path = KeyFile(16);

        var lines = await Checked.LinesAsync(r => KeyProviderCheck.RunAsync(Checked.Serving(_pki) with { EncryptionKeyFile = path }, r, CancellationToken.None));

        var failure = Assert.Single(lines);
        Assert.Equal(CheckStatus.Fail, failure.Status);
        Assert.Contains("decodes to 16 bytes; it must decode to exactly 32", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_encryption_is_a_warning()
    {
        var lines = await Checked.LinesAsync(r => KeyProviderCheck.RunAsync(Checked.Serving(_pki) with { NoEncryption = true }, r, CancellationToken.None));

        Assert.Equal("encryption", Checked.Single(lines, CheckStatus.Warn).Check);
    }

    [Fact]
    public async Task A_pkcs11_module_that_does_not_load_fails()
    {
        var pin = Path.Combine(_pki.Directory, "pin");
        File.WriteAllText(pin, "123456");
        var options = Checked.Serving(_pki) with { Pkcs11Module = Path.Combine(_pki.Directory, "libnothing.so"), Pkcs11TokenLabel = "t", Pkcs11PinFile = pin, Pkcs11KeyLabel = "kek" };

        var lines = await Checked.LinesAsync(r => KeyProviderCheck.RunAsync(options, r, CancellationToken.None));

        var failure = Assert.Single(lines);
        Assert.Equal("pkcs11", failure.Check);
        Assert.Equal(CheckStatus.Fail, failure.Status);
        Assert.DoesNotContain("123456", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_kms_plugin_that_is_not_there_fails()
    {
        var socket = Path.Combine(_pki.Directory, "kms.sock");

        var lines = await Checked.LinesAsync(r => KeyProviderCheck.RunAsync(Checked.Serving(_pki) with { KmsPluginEndpoint = "unix://" + socket }, r, CancellationToken.None));

        var failure = Assert.Single(lines);
        Assert.Equal(CheckStatus.Fail, failure.Status);
        Assert.StartsWith($"KMS plugin unix://{socket} does not answer Status (Unavailable", failure.Detail, StringComparison.Ordinal);
    }
}
