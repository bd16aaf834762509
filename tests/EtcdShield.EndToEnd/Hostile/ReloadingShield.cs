using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Reload;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// etcd behind EtcdShield with a policy file and a CRL the test rewrites while clients hold streams open, and
/// reloads at once (the timer is set to an hour, so nothing changes behind the test's back).
/// </summary>
internal sealed class ReloadingShield : IAsyncDisposable
{
    private ReloadingShield(TestPki pki, EtcdProcess etcd, ShieldServer shield, string policyFile, string crlFile)
    {
        Pki = pki;
        Etcd = etcd;
        Shield = shield;
        PolicyFile = policyFile;
        CrlFile = crlFile;
    }

    public TestPki Pki { get; }

    public EtcdProcess Etcd { get; }

    public ShieldServer Shield { get; }

    public string PolicyFile { get; }

    public string CrlFile { get; }

    /// <param name="flags">More flags; <paramref name="pki"/> lets them name files of a PKI made beforehand.</param>
    public static async Task<ReloadingShield> StartAsync(string policy, IEnumerable<string>? flags = null, TestPki? pki = null)
    {
        pki ??= new TestPki();
        var etcd = await EtcdProcess.StartAsync();
        var policyFile = Path.Combine(pki.Directory, "hostile-policy.yaml");
        await File.WriteAllTextAsync(policyFile, policy);
        var crlFile = pki.WriteCrl("hostile", []);
        var shield = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags:
        [
            "--policy-file", policyFile, "--client-crl-file", crlFile, "--reload-interval", "1h", .. flags ?? [],
        ]);
        return new ReloadingShield(pki, etcd, shield, policyFile, crlFile);
    }

    /// <summary>Replaces the policy file as an operator's tooling does (write aside, rename) and reloads it.</summary>
    public async Task ReplacePolicyAsync(string policy)
    {
        await ReplaceAsync(PolicyFile, policy);
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow()["policy"]);
    }

    /// <summary>Writes a CRL revoking <paramref name="revoked"/> and reloads the client trust.</summary>
    public void Revoke(CertificatePaths revoked)
    {
        Assert.Equal(CrlFile, Pki.WriteCrl("hostile", [revoked]));
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow()["client trust"]);
    }

    /// <summary>Replaces a CA bundle given with --trusted-ca-file and reloads the client trust.</summary>
    public async Task ReplaceTrustedCasAsync(string bundle, string content)
    {
        await ReplaceAsync(bundle, content);
        Assert.Equal(ReloadOutcome.Reloaded, ReloadNow()["client trust"]);
    }

    private static async Task ReplaceAsync(string path, string content)
    {
        var temporary = path + ".new";
        await File.WriteAllTextAsync(temporary, content);
        File.Move(temporary, path, overwrite: true);
    }

    public async ValueTask DisposeAsync()
    {
        await Shield.DisposeAsync();
        await Etcd.DisposeAsync();
        Pki.Dispose();
    }

    private IReadOnlyDictionary<string, ReloadOutcome> ReloadNow() =>
        Shield.Services.GetRequiredService<ConfigurationReloader>().ReloadNow();
}
