using EtcdShield.Checks;
using EtcdShield.Configuration;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.Tests.Checks;

/// <summary>Runs one check into a fresh report and hands back its lines; and the options of a good serving setup.</summary>
internal static class Checked
{
    public static IReadOnlyList<CheckLine> Lines(Action<CheckReport> check)
    {
        var report = new CheckReport();
        check(report);
        return report.Close();
    }

    public static async Task<IReadOnlyList<CheckLine>> LinesAsync(Func<CheckReport, Task> check)
    {
        var report = new CheckReport();
        await check(report);
        return report.Close();
    }

    /// <summary>Serving on 127.0.0.1 with the PKI's server certificate, trusting its CA, with a development key.</summary>
    public static ShieldOptions Serving(TestPki pki) => new()
    {
        ListenClientUrls = [new Uri("https://127.0.0.1:23790")],
        AdvertiseClientUrls = [new Uri("https://127.0.0.1:23790")],
        CertFile = pki.ServerCert.CertFile,
        KeyFile = pki.ServerCert.KeyFile,
        TrustedCaFile = pki.CaFile,
        AllowCommonNames = ["root"],
    };

    public static CheckLine Single(IReadOnlyList<CheckLine> lines, CheckStatus status) => Assert.Single(lines, l => l.Status == status);

    public static void NoFailure(IReadOnlyList<CheckLine> lines) =>
        Assert.DoesNotContain(lines, l => l.Status == CheckStatus.Fail);
}
