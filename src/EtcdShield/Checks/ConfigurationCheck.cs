using System.Globalization;
using EtcdShield.Configuration;

namespace EtcdShield.Checks;

/// <summary>
/// <c>etcdshield check</c>: validates a configuration without serving, one line per check (<see cref="CheckLine"/>),
/// exit code 1 on any failure. Every check runs, after a failure too, each within <see cref="CheckTimeout"/>, so one
/// hung device or socket cannot hide what the others would say. The format and each check are in docs/check.md.
/// </summary>
internal static class ConfigurationCheck
{
    /// <summary>Long enough for an HSM's login and a wrap, short enough that a dead peer does not stall a deploy.</summary>
    public static readonly TimeSpan CheckTimeout = TimeSpan.FromSeconds(5);

    public static Task<int> RunAsync(ShieldOptions options, TextWriter output, CancellationToken cancellationToken) =>
        RunAsync(options, output, CheckTimeout, cancellationToken);

    internal static async Task<int> RunAsync(ShieldOptions options, TextWriter output, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        (string Name, Func<CheckReport, CancellationToken, Task> Run)[] checks =
        [
            (FileChecks.Name, (report, _) => Sync(() => FileChecks.Run(options, report))),
            ("serving-cert", (report, _) => Sync(() => CertificateChecks.ServingCertificate(options, report))),
            ("serving-cert-hosts", (report, _) => Sync(() => CertificateChecks.ServingHosts(options, report))),
            ("client-ca", (report, _) => Sync(() => CertificateChecks.ClientTrustFiles(options, report))),
            ("upstream-cert", (report, _) => Sync(() => CertificateChecks.Upstream(options, report))),
            ("expiry", (report, _) => Sync(() => CertificateChecks.Expiry(options, report))),
            (PolicyCheck.Name, (report, _) => Sync(() => PolicyCheck.Run(options, report))),
            (KeyProviderCheck.NameFor(options), (report, token) => KeyProviderCheck.RunAsync(options, report, token)),
            (EtcdCheck.Name, (report, token) => EtcdCheck.RunAsync(options, report, token)),
        ];

        var counts = new Dictionary<CheckStatus, int> { [CheckStatus.Ok] = 0, [CheckStatus.Warn] = 0, [CheckStatus.Fail] = 0 };
        foreach (var (name, run) in checks)
        {
            foreach (var line in await RunOneAsync(name, run, timeout, cancellationToken).ConfigureAwait(false))
            {
                counts[line.Status]++;
                await output.WriteLineAsync(line.ToString().AsMemory(), cancellationToken).ConfigureAwait(false);
            }
        }

        // Lower case, so that grep '^FAIL' or grep -c FAIL counts only the checks.
        await output.WriteLineAsync(string.Create(
            CultureInfo.InvariantCulture,
            $"summary: {counts[CheckStatus.Ok]} ok, {counts[CheckStatus.Warn]} warn, {counts[CheckStatus.Fail]} fail").AsMemory(), cancellationToken).ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return counts[CheckStatus.Fail] > 0 ? 1 : 0;
    }

    private static async Task<IReadOnlyList<CheckLine>> RunOneAsync(
        string name, Func<CheckReport, CancellationToken, Task> run, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var report = new CheckReport();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        // On the pool, so that a check blocked in a native call (a PKCS#11 module) is abandoned at its deadline.
        using var expiry = deadline.Token.Register(report.Expire);
        var work = Task.Run(() => run(report, deadline.Token), CancellationToken.None);
        var seconds = timeout.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
        var timedOut = new CheckLine(CheckStatus.Fail, name, $"no answer within {seconds}s; whatever it waits for (device, socket, network) is not responding");
        try
        {
            await work.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            // A check may finish on its own because its deadline cancelled the call it waited on: still a time-out.
            return report.Close(deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested ? timedOut : null);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && (e is TimeoutException || deadline.IsCancellationRequested))
        {
            // Past the deadline whatever the check threw: a call cut short by it is the same time-out.
            return report.Close(timedOut);
        }
#pragma warning disable CA1031 // A check that throws what nobody expected fails that check; the others still run.
        catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
        {
            return report.Close(new CheckLine(CheckStatus.Fail, name, $"the check failed unexpectedly ({e.GetType().Name}: {e.Message})"));
        }
    }

    private static Task Sync(Action check)
    {
        check();
        return Task.CompletedTask;
    }
}
