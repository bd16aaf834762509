using System.Diagnostics.Metrics;
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.Reload;

namespace EtcdShield.Tls;

/// <summary>
/// How long each certificate the proxy depends on stays valid: the serving certificate, every trusted client CA,
/// the upstream client certificate and the upstream CAs. Exported as seconds left, warned about in the log from
/// <c>--cert-expiry-warning</c> on, and reported by /health as degraded, so nobody learns of it from an outage.
/// </summary>
internal sealed partial class CertificateExpiry : IReloadObserver
{
    /// <summary>The "Tls" feature's meter; this class is its only owner.</summary>
    public const string MeterName = "EtcdShield.Tls";

    private readonly ReloadableFiles<ServerCertificate> _server;
    private readonly ReloadableFiles<ClientTrust> _trust;
    private readonly IReadOnlyList<X509Certificate2> _upstreamClient;
    private readonly IReadOnlyList<X509Certificate2> _upstreamAuthorities;
    private readonly TimeSpan _warnBefore;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly HashSet<string> _warned = new(StringComparer.Ordinal);

    public CertificateExpiry(
        ReloadableFiles<ServerCertificate> server,
        ReloadableFiles<ClientTrust> trust,
        ShieldOptions options,
        TimeProvider time,
        IMeterFactory meters,
        ILogger<CertificateExpiry> logger)
    {
        _server = server;
        _trust = trust;
        _upstreamClient = options.UpstreamCertFile is { } cert ? ReadPem(cert) : [];
        _upstreamAuthorities = options.UpstreamTrustedCaFile is { } ca ? ReadPem(ca) : [];
        _warnBefore = options.CertExpiryWarning;
        _time = time;
        _logger = logger;
        meters.Create(MeterName).CreateObservableGauge(
            "etcdshield.certificate.expiry",
            Observe,
            unit: "s",
            description: "Seconds until each certificate the proxy uses expires (negative once expired), by role and subject.");
    }

    /// <summary>
    /// Certificates within the warning window or past it, and CRLs past their next update (revocations issued
    /// since are not known to the proxy), as /health words them.
    /// </summary>
    public IReadOnlyList<string> Expiring()
    {
        var now = _time.GetUtcNow();
        var warnings = Watched()
            .Where(w => w.Certificate.NotAfter.ToUniversalTime() - now.UtcDateTime <= _warnBefore)
            .Select(w => Describe(w.Role, w.Certificate, now))
            .ToList();
        warnings.AddRange(_trust.Current.Revocations
            .Where(crl => crl.NextUpdate < now)
            .Select(crl => $"the CRL of '{crl.Issuer.Name}' was due for an update at {crl.NextUpdate!.Value.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)}; replace --client-crl-file"));
        return warnings;
    }

    /// <summary>After each look at the files: a reloaded certificate may be close to expiry, or time has passed.</summary>
    void IReloadObserver.FilesChecked() => WarnIfExpiring();

    /// <summary>Logs a warning once per certificate (per process) when it enters the warning window.</summary>
    private void WarnIfExpiring()
    {
        var now = _time.GetUtcNow();
        foreach (var (role, certificate) in Watched())
        {
            if (certificate.NotAfter.ToUniversalTime() - now.UtcDateTime <= _warnBefore)
            {
                lock (_warned)
                {
                    if (!_warned.Add(role + certificate.Thumbprint))
                    {
                        continue;
                    }
                }

                Log.Expiring(_logger, Describe(role, certificate, now));
            }
        }
    }

    private IEnumerable<(string Role, X509Certificate2 Certificate)> Watched()
    {
        yield return ("serving", _server.Current.Leaf);
        foreach (var ca in _trust.Current.Authorities)
        {
            yield return ("client-ca", ca);
        }

        foreach (var cert in _upstreamClient.Take(1))
        {
            yield return ("upstream-client", cert);
        }

        foreach (var ca in _upstreamAuthorities)
        {
            yield return ("upstream-ca", ca);
        }
    }

    private IEnumerable<Measurement<double>> Observe()
    {
        var now = _time.GetUtcNow().UtcDateTime;
        foreach (var (role, certificate) in Watched())
        {
            yield return new Measurement<double>(
                (certificate.NotAfter.ToUniversalTime() - now).TotalSeconds,
                new KeyValuePair<string, object?>("role", role),
                new KeyValuePair<string, object?>("subject", certificate.Subject));
        }
    }

    private static string Describe(string role, X509Certificate2 certificate, DateTimeOffset now)
    {
        var left = certificate.NotAfter.ToUniversalTime() - now.UtcDateTime;
        var when = certificate.NotAfter.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        return left <= TimeSpan.Zero
            ? $"{role} certificate '{certificate.Subject}' expired at {when}"
            : $"{role} certificate '{certificate.Subject}' expires at {when}, in {left.TotalDays.ToString("0.#", CultureInfo.InvariantCulture)} days";
    }

    private static List<X509Certificate2> ReadPem(string path)
    {
        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPemFile(path);
        return certificates.ToList();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.Expiring, EventName = nameof(EventIds.Expiring), Level = LogLevel.Warning, Message = "Certificate expiry: {Description}")]
        public static partial void Expiring(ILogger logger, string description);
    }
}
