using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.Tls;

namespace EtcdShield.Checks;

/// <summary>
/// The certificates, loaded by the code the proxy loads them with (<see cref="ServerTls"/>, <see cref="ClientTrust"/>):
/// each certificate with its key, the serving certificate's usage, the host names it covers and the CA it chains to,
/// the CRL's signature, and how long each certificate has left.
/// </summary>
internal static class CertificateChecks
{
    private const string ServerAuth = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuth = "1.3.6.1.5.5.7.3.2";

    /// <summary>The serving certificate against its key, its usage, and the CA it chains to.</summary>
    public static void ServingCertificate(ShieldOptions options, CheckReport report)
    {
        const string name = "serving-cert";
        if (string.IsNullOrEmpty(options.CertFile) || string.IsNullOrEmpty(options.KeyFile))
        {
            report.Fail(name, "--cert-file and --key-file are required to serve clients; give the certificate and key clients connect to");
            return;
        }

        ServerCertificate served;
        try
        {
            served = ServerTls.LoadServerCertificate(options.CertFile, options.KeyFile);
        }
        catch (ConfigurationException e)
        {
            report.Fail(name, $"{e.Message}; --key-file must hold the private key --cert-file was issued for");
            return;
        }

        var leaf = served.Leaf;
        report.Ok(name, $"'{leaf.Subject}' in --cert-file matches --key-file");
        if (HasUsage(leaf, ServerAuth))
        {
            report.Ok(name, $"'{leaf.Subject}' may serve TLS (extended key usage serverAuth or none)");
        }
        else
        {
            report.Fail(name, $"'{leaf.Subject}' lacks the extended key usage serverAuth, so clients refuse it; reissue it with extendedKeyUsage = serverAuth");
        }

        Chain(options, served, report);
    }

    /// <summary>Every host clients are told (--advertise-client-urls) or that the proxy listens on is in the certificate.</summary>
    public static void ServingHosts(ShieldOptions options, CheckReport report)
    {
        const string name = "serving-cert-hosts";
        Listenable(options, report);
        X509Certificate2 leaf;
        try
        {
            leaf = ServerTls.LoadServerCertificate(options.CertFile, options.KeyFile).Leaf;
        }
        catch (ConfigurationException)
        {
            report.Fail(name, "cannot tell which hosts the serving certificate covers: it does not load (see serving-cert)");
            return;
        }

        // Before the names are made distinct: a listen URL of 0.0.0.0 would hide the advertised one it defaulted to.
        foreach (var url in options.AdvertiseClientUrls.Where(IsUnspecified))
        {
            report.Warn(name, $"--advertise-client-urls {url} names no host: member lists give it to clients, which cannot connect to it; set --advertise-client-urls to the addresses or names clients use");
        }

        var hosts = options.ListenClientUrls.Select(u => (Flag: "--listen-client-urls", Url: u))
            .Concat(options.AdvertiseClientUrls.Select(u => (Flag: "--advertise-client-urls", Url: u)))
            .DistinctBy(h => HostOf(h.Url), StringComparer.OrdinalIgnoreCase);
        foreach (var (flag, url) in hosts)
        {
            var host = HostOf(url);
            if (IsUnspecified(url))
            {
                if (flag == "--advertise-client-urls")
                {
                    continue;
                }

                report.Ok(name, $"{flag} {url} listens on every address; clients connect by --advertise-client-urls, checked by name");
            }
            else if (leaf.MatchesHostname(host, allowWildcards: true, allowCommonName: false))
            {
                report.Ok(name, $"'{leaf.Subject}' covers {host} ({flag})");
            }
            else
            {
                var kind = IPAddress.TryParse(host, out _) ? "an IP address" : "a DNS name";
                report.Fail(name, $"'{leaf.Subject}' does not cover {host} of {flag} {url}: clients checking the host name refuse it; reissue it with {host} as {kind} subject alternative name");
            }
        }
    }

    /// <summary>
    /// The proxy binds an IP address or localhost (ShieldHost.Listen) and refuses any other host name at start-up: a
    /// name resolved at bind time could move the listener to an address nobody meant.
    /// </summary>
    private static void Listenable(ShieldOptions options, CheckReport report)
    {
        var urls = options.ListenClientUrls.Select(u => (Flag: "--listen-client-urls", Url: u));
        if (options.MetricsListenUrl is { } metrics)
        {
            urls = urls.Append(("--metrics-listen-url", metrics));
        }

        foreach (var (flag, url) in urls)
        {
            if (!string.Equals(url.Host, "localhost", StringComparison.OrdinalIgnoreCase) && !IPAddress.TryParse(HostOf(url), out _))
            {
                report.Fail("listen", $"{flag} {url} names the host {url.Host}: the proxy listens only on an IP address or localhost and refuses to start; listen on the address and name the host in --advertise-client-urls");
            }
        }
    }

    /// <summary>The client CAs and the CRL, as the proxy loads them: the CRL's signature is checked against those CAs.</summary>
    public static void ClientTrustFiles(ShieldOptions options, CheckReport report)
    {
        if (string.IsNullOrEmpty(options.TrustedCaFile))
        {
            report.Fail("client-ca", "--trusted-ca-file is required: the CA (or CAs) whose client certificates the proxy admits");
            return;
        }

        X509Certificate2Collection authorities;
        try
        {
            authorities = ServerTls.LoadAuthorities("--trusted-ca-file", options.TrustedCaFile);
        }
        catch (ConfigurationException e)
        {
            report.Fail("client-ca", $"{e.Message}; it must hold the PEM certificates of the CAs that issue client certificates");
            return;
        }

        report.Ok("client-ca", $"--trusted-ca-file holds {authorities.Count} CA certificate(s): {string.Join(", ", authorities.Select(a => $"'{a.Subject}'"))}");
        if (options.ClientCrlFile is not { } crlFile)
        {
            return;
        }

        ClientTrust trust;
        try
        {
            trust = ClientTrust.Load(options.TrustedCaFile, crlFile, new RevocationHistory());
        }
        catch (ConfigurationException e)
        {
            report.Fail("crl", $"{e.Message}; give the current CRL of a CA in --trusted-ca-file");
            return;
        }

        var now = DateTimeOffset.UtcNow;
        foreach (var list in trust.Revocations)
        {
            var next = list.NextUpdate is { } due ? $", next update {Time(due.UtcDateTime)}" : "";
            if (list.NextUpdate < now)
            {
                report.Warn("crl", $"the CRL of '{list.Issuer.Name}' was due for an update at {Time(list.NextUpdate.Value.UtcDateTime)}: revocations since are unknown to the proxy; replace --client-crl-file");
            }
            else
            {
                report.Ok("crl", $"the CRL of '{list.Issuer.Name}' is signed by a CA in --trusted-ca-file (issued {Time(list.ThisUpdate.UtcDateTime)}{next})");
            }
        }
    }

    /// <summary>The proxy's own certificate towards etcd and the CAs it checks etcd against.</summary>
    public static void Upstream(ShieldOptions options, CheckReport report)
    {
        if (options.UpstreamCertFile is { } cert && options.UpstreamKeyFile is { } key)
        {
            try
            {
                var leaf = ServerTls.LoadServerCertificate(cert, key).Leaf;
                report.Ok("upstream-cert", $"'{leaf.Subject}' in --upstream-cert-file matches --upstream-key-file");
                if (!HasUsage(leaf, ClientAuth))
                {
                    report.Fail("upstream-cert", $"'{leaf.Subject}' lacks the extended key usage clientAuth, so etcd refuses it; reissue it with extendedKeyUsage = clientAuth");
                }
            }
            catch (ConfigurationException e)
            {
                report.Fail("upstream-cert", $"{e.Message}; --upstream-key-file must hold the private key --upstream-cert-file was issued for");
            }
        }

        if (options.UpstreamTrustedCaFile is { } ca)
        {
            try
            {
                var authorities = ServerTls.LoadAuthorities("--upstream-trusted-ca-file", ca);
                report.Ok("upstream-ca", $"--upstream-trusted-ca-file holds {authorities.Count} CA certificate(s)");
            }
            catch (ConfigurationException e)
            {
                report.Fail("upstream-ca", $"{e.Message}; it must hold the CA that issued etcd's serving certificate");
            }
        }
    }

    /// <summary>Days left of every certificate the proxy depends on, as <see cref="CertificateExpiry"/> watches them.</summary>
    public static void Expiry(ShieldOptions options, CheckReport report)
    {
        const string name = "expiry";
        var now = DateTime.UtcNow;
        foreach (var (role, certificate) in Watched(options))
        {
            var notAfter = certificate.NotAfter.ToUniversalTime();
            var notBefore = certificate.NotBefore.ToUniversalTime();
            var left = notAfter - now;
            var what = $"{role} certificate '{certificate.Subject}'";
            if (left <= TimeSpan.Zero)
            {
                report.Fail(name, $"{what} expired at {Time(notAfter)}; renew it");
            }
            else if (notBefore > now)
            {
                report.Fail(name, $"{what} is not valid before {Time(notBefore)}; check this machine's clock or reissue it");
            }
            else if (left <= options.CertExpiryWarning)
            {
                report.Warn(name, $"{what} expires at {Time(notAfter)}, in {Days(left)} days (within --cert-expiry-warning); renew it");
            }
            else
            {
                report.Ok(name, $"{what} expires at {Time(notAfter)}, in {Days(left)} days");
            }
        }
    }

    private static void Chain(ShieldOptions options, ServerCertificate served, CheckReport report)
    {
        const string name = "serving-cert";
        var leaf = served.Leaf;
        X509Certificate2Collection authorities;
        try
        {
            authorities = ServerTls.LoadAuthorities("--trusted-ca-file", options.TrustedCaFile);
        }
        catch (ConfigurationException)
        {
            report.Warn(name, $"cannot tell whether '{leaf.Subject}' chains to a CA in --trusted-ca-file, which does not load (see client-ca); clients must trust its issuer '{leaf.Issuer}'");
            return;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // Validity is the expiry check's to report, once.
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid;
        if (served.Context.IntermediateCertificates is { } intermediates)
        {
            foreach (var intermediate in intermediates)
            {
                chain.ChainPolicy.ExtraStore.Add(intermediate);
            }
        }

        if (chain.Build(leaf))
        {
            var root = chain.ChainElements[^1].Certificate;
            report.Ok(name, $"'{leaf.Subject}' chains to '{root.Subject}' in --trusted-ca-file, the CA its clients can trust");
            return;
        }

        var problems = chain.ChainStatus.Select(s => s.Status).Where(s => s != X509ChainStatusFlags.NoError).ToList();
        if (problems.All(s => s is X509ChainStatusFlags.PartialChain or X509ChainStatusFlags.UntrustedRoot))
        {
            report.Warn(name, $"'{leaf.Subject}' does not chain to a CA in --trusted-ca-file: clients must trust its issuer '{leaf.Issuer}' (their --cacert), or append the intermediate CAs to --cert-file");
        }
        else
        {
            report.Fail(name, $"'{leaf.Subject}' has a broken chain ({string.Join(", ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()))}); reissue it or fix the intermediates in --cert-file");
        }
    }

    private static IEnumerable<(string Role, X509Certificate2 Certificate)> Watched(ShieldOptions options)
    {
        foreach (var certificate in Leaves(options.CertFile).Take(1))
        {
            yield return ("serving", certificate);
        }

        foreach (var ca in Leaves(options.TrustedCaFile))
        {
            yield return ("client-ca", ca);
        }

        foreach (var certificate in Leaves(options.UpstreamCertFile).Take(1))
        {
            yield return ("upstream-client", certificate);
        }

        foreach (var ca in Leaves(options.UpstreamTrustedCaFile))
        {
            yield return ("upstream-ca", ca);
        }
    }

    /// <summary>The certificates of a PEM file; none when it is not set or does not load (the other checks say why).</summary>
    private static X509Certificate2Collection Leaves(string? path)
    {
        var certificates = new X509Certificate2Collection();
        if (!string.IsNullOrEmpty(path))
        {
            try
            {
                certificates.ImportFromPemFile(path);
            }
            catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
            {
                return [];
            }
        }

        return certificates;
    }

    private static bool HasUsage(X509Certificate2 certificate, string oid) =>
        certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault() is not { } usages
        || usages.EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>().Any(u => u.Value == oid);

    private static bool IsUnspecified(Uri url) =>
        IPAddress.TryParse(HostOf(url), out var address) && (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any));

    private static string HostOf(Uri url) => url.HostNameType == UriHostNameType.IPv6 ? url.Host.Trim('[', ']') : url.Host;

    private static string Time(DateTime utc) => utc.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    private static string Days(TimeSpan left) => left.TotalDays.ToString("0.#", CultureInfo.InvariantCulture);
}
