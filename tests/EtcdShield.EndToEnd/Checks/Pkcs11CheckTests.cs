using EtcdShield.Configuration;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Keys;

namespace EtcdShield.EndToEnd.Checks;

/// <summary><c>etcdshield check</c> against a real SoftHSM2 token, in process as the proxy loads it.</summary>
[Collection(SoftHsmTests.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class Pkcs11CheckTests(SoftHsmInProcess hsm) : IDisposable
{
    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    private static async Task<ShieldOptions> OptionsAsync(TestPki pki, InProcessToken token, string keyLabel, string? pinFile = null) => new()
    {
        ListenClientUrls = [new Uri("https://127.0.0.1:23790")],
        CertFile = pki.ServerCert.CertFile,
        KeyFile = pki.ServerCert.KeyFile,
        TrustedCaFile = pki.CaFile,
        AllowCommonNames = ["root"],
        UpstreamEndpoints = [new Uri((await SharedEtcd.GetAsync()).ClientUrl)],
        Pkcs11Module = SoftHsmToken.ModulePath,
        Pkcs11TokenLabel = token.Label,
        Pkcs11PinFile = pinFile ?? token.PinFile,
        Pkcs11KeyLabel = keyLabel,
    };

    [Fact]
    public async Task A_sensitive_non_extractable_kek_passes_with_a_wrap_round_trip()
    {
        var token = hsm.CreateToken("check");
        (await token.OperatorKeyAsync("kek", "--sensitive", "--usage-wrap")).EnsureSuccess();

        var run = await CheckRun.OfAsync(await OptionsAsync(_pki, token, "kek"));

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains($"ok   pkcs11: module {SoftHsmToken.ModulePath} loads, token \"{token.Label}\" is present and the PIN in --pkcs11-pin-file logs in", run.Lines);
        Assert.Contains("ok   pkcs11-kek: key \"kek\" (version 1, the current of 1): AES-256, CKA_SENSITIVE=true, CKA_EXTRACTABLE=false, may wrap and unwrap", run.Lines);
        Assert.Contains("ok   pkcs11-wrap: the token wrapped and unwrapped a random data key with \"kek\"", run.Lines);
        Assert.DoesNotContain(run.Lines, l => l.Contains(SoftHsmInProcess.Pin, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_wrong_pin_fails_without_showing_either_pin()
    {
        var token = hsm.CreateToken("check");
        (await token.OperatorKeyAsync("kek", "--sensitive", "--usage-wrap")).EnsureSuccess();
        var wrongPin = Path.Combine(_pki.Directory, "wrong.pin");
        await File.WriteAllTextAsync(wrongPin, "999999\n");
        File.SetUnixFileMode(wrongPin, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var run = await CheckRun.OfAsync(await OptionsAsync(_pki, token, "kek", wrongPin));

        Assert.Equal(1, run.ExitCode);
        var failure = Assert.Single(run.Failures);
        Assert.True(failure.StartsWith("FAIL pkcs11: ", StringComparison.Ordinal), failure);
        Assert.True(failure.Contains("the token refused the PIN in --pkcs11-pin-file (CKR_PIN_INCORRECT)", StringComparison.Ordinal), failure);
        Assert.DoesNotContain(run.Lines, l => l.Contains("999999", StringComparison.Ordinal) || l.Contains(SoftHsmInProcess.Pin, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_extractable_kek_fails()
    {
        var token = hsm.CreateToken("check");
        (await token.OperatorKeyAsync("kek", "--sensitive", "--usage-wrap", "--extractable")).EnsureSuccess();

        var run = await CheckRun.OfAsync(await OptionsAsync(_pki, token, "kek"));

        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("FAIL pkcs11-kek: key \"kek\" is extractable (CKA_EXTRACTABLE=true)", Assert.Single(run.Failures), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_kek_fails_naming_the_command_that_creates_it()
    {
        var token = hsm.CreateToken("check");

        var run = await CheckRun.OfAsync(await OptionsAsync(_pki, token, "kek"));

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("create it with: etcdshield keys create --pkcs11-key-label kek", Assert.Single(run.Failures), StringComparison.Ordinal);
    }
}
