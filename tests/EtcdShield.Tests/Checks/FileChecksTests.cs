using EtcdShield.Checks;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.Tests.Checks;

// File modes are what these tests are about, and the proxy runs on Linux.
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class FileChecksTests : IDisposable
{
    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    [Fact]
    public void Every_configured_file_that_exists_is_readable()
    {
        var lines = Checked.Lines(r => FileChecks.Run(Checked.Serving(_pki), r));

        Checked.NoFailure(lines);
        Assert.Contains(lines, l => l.Detail == $"--cert-file {_pki.ServerCert.CertFile} is readable");
        Assert.Contains(lines, l => l.Detail == $"--key-file {_pki.ServerCert.KeyFile} is readable");
        Assert.Contains(lines, l => l.Detail == $"--trusted-ca-file {_pki.CaFile} is readable");
    }

    [Fact]
    public void A_missing_policy_file_fails_naming_the_flag()
    {
        var missing = Path.Combine(_pki.Directory, "nowhere.yaml");

        var lines = Checked.Lines(r => FileChecks.Run(Checked.Serving(_pki) with { PolicyFile = missing }, r));

        var failure = Checked.Single(lines, CheckStatus.Fail);
        Assert.Equal($"FAIL file: --policy-file {missing} cannot be read (no such file); fix the path or give this user read access", failure.ToString());
    }

    [Fact]
    public void A_pkcs11_module_is_checked_by_path_and_a_bare_library_name_is_left_to_the_loader()
    {
        var missing = Path.Combine(_pki.Directory, "libmissing.so");

        var byPath = Checked.Lines(r => FileChecks.Run(Checked.Serving(_pki) with { Pkcs11Module = missing }, r));
        var byName = Checked.Lines(r => FileChecks.Run(Checked.Serving(_pki) with { Pkcs11Module = "libsofthsm2.so" }, r));

        Assert.StartsWith($"--pkcs11-module {missing} cannot be read", Checked.Single(byPath, CheckStatus.Fail).Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(byName, l => l.Detail.Contains("--pkcs11-module", StringComparison.Ordinal));
    }

    [Fact]
    public void A_pin_file_readable_by_others_is_a_warning_and_its_content_is_never_shown()
    {
        var pin = Path.Combine(_pki.Directory, "pin");
        File.WriteAllText(pin, "s3cr3t-pin\n");
        File.SetUnixFileMode(pin, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        var lines = Checked.Lines(r => FileChecks.Run(Checked.Serving(_pki) with { Pkcs11PinFile = pin }, r));

        var warning = Checked.Single(lines, CheckStatus.Warn);
        Assert.StartsWith($"--pkcs11-pin-file {pin} holds the token's PIN and is readable by group or others", warning.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(lines, l => l.ToString().Contains("s3cr3t", StringComparison.Ordinal));
    }

    [Fact]
    public void A_private_pin_file_is_no_warning()
    {
        var pin = Path.Combine(_pki.Directory, "pin");
        File.WriteAllText(pin, "1234\n");
        File.SetUnixFileMode(pin, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var lines = Checked.Lines(r => FileChecks.Run(Checked.Serving(_pki) with { Pkcs11PinFile = pin }, r));

        Assert.All(lines, l => Assert.Equal(CheckStatus.Ok, l.Status));
    }

    [Fact]
    public void An_audit_log_in_a_writable_directory_passes_and_is_not_created()
    {
        var log = Path.Combine(_pki.Directory, "audit.log");

        var lines = Checked.Lines(r => FileChecks.Run(Checked.Serving(_pki) with { AuditLog = log }, r));

        Assert.Contains(lines, l => l.Status == CheckStatus.Ok && l.Detail.StartsWith($"--audit-log {log} can be written", StringComparison.Ordinal));
        Assert.False(File.Exists(log));
        Assert.DoesNotContain(Directory.GetFiles(_pki.Directory), f => Path.GetFileName(f).StartsWith(".etcdshield-check", StringComparison.Ordinal));
    }

    [Fact]
    public void An_audit_log_in_a_missing_directory_fails()
    {
        var log = Path.Combine(_pki.Directory, "no-such-dir", "audit.log");

        var lines = Checked.Lines(r => FileChecks.Run(Checked.Serving(_pki) with { AuditLog = log }, r));

        var failure = Checked.Single(lines, CheckStatus.Fail);
        Assert.StartsWith($"--audit-log {log} cannot be written", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Audit_to_standard_output_needs_no_file()
    {
        var lines = Checked.Lines(r => FileChecks.Run(Checked.Serving(_pki) with { AuditLog = "-" }, r));

        Assert.DoesNotContain(lines, l => l.Detail.Contains("--audit-log", StringComparison.Ordinal));
    }
}
