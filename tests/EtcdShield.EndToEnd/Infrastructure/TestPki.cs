using System.Formats.Asn1;
using System.Net;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// A throw-away PKI in a temporary directory: a root CA, a server certificate for 127.0.0.1/localhost,
/// and methods to issue client, server and refused certificates. All keys are ECDSA P-256.
/// Usable as an xunit class fixture.
/// </summary>
public sealed partial class TestPki : IDisposable
{
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    // Leaves start an hour in the past so a slightly slow clock elsewhere cannot make them "not yet valid".
    private static readonly TimeSpan ClockSkew = TimeSpan.FromHours(1);

    private readonly List<TestCertificateAuthority> authorities = [];
    private readonly Lock gate = new();

    public TestPki()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("etcdshield-pki-").FullName;
        Authority = CreateAuthority("ca", AuthoritySubject("EtcdShield Test Root CA"), parent: null);
        ServerCert = IssueServer("server");
    }

    /// <summary>The temporary directory holding every file written; deleted on dispose.</summary>
    public string Directory { get; }

    /// <summary>The root CA that etcd and the proxy trust.</summary>
    public TestCertificateAuthority Authority { get; }

    public string CaFile => Authority.CertFile;

    /// <summary>For 127.0.0.1 and localhost, with serverAuth and clientAuth because etcd reuses it towards its peers.</summary>
    public CertificatePaths ServerCert { get; }

    /// <summary>Issues a client certificate (clientAuth only) and writes <c>name.pem</c> and <c>name-key.pem</c>.</summary>
    /// <param name="commonName">Null leaves the CN out, for tests of identities taken from SANs only.</param>
    /// <param name="notAfter">A time in the past gives an expired certificate.</param>
    /// <param name="issuer">Defaults to <see cref="Authority"/>; pass another authority for certificates that must be refused.</param>
    /// <param name="subject">A whole subject (see <see cref="Subject"/>), in place of <paramref name="commonName"/> and <paramref name="organizationalUnit"/>.</param>
    public CertificatePaths IssueClient(
        string name,
        string? commonName,
        IEnumerable<string>? dnsNames = null,
        IEnumerable<string>? uris = null,
        string? organizationalUnit = null,
        DateTimeOffset? notBefore = null,
        DateTimeOffset? notAfter = null,
        TestCertificateAuthority? issuer = null,
        X500DistinguishedName? subject = null)
    {
        var sans = new SubjectAlternativeNameBuilder();
        var anySan = false;
        foreach (var dnsName in dnsNames ?? [])
        {
            sans.AddDnsName(dnsName);
            anySan = true;
        }

        foreach (var uri in uris ?? [])
        {
            sans.AddUri(new Uri(uri, UriKind.Absolute));
            anySan = true;
        }

        return Issue(name, subject ?? SubjectOf(commonName, organizationalUnit), anySan ? sans : null, [ClientAuth], notBefore, notAfter, issuer);
    }

    /// <summary>A self-signed client certificate (clientAuth) that no CA vouches for, written as <c>name.pem</c> and <c>name-key.pem</c>.</summary>
    public CertificatePaths IssueSelfSignedClient(string name, X500DistinguishedName subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ClientAuth], critical: false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now - ClockSkew, now.AddDays(30));
        var paths = new CertificatePaths(PathFor(name + ".pem"), PathFor(name + "-key.pem"));
        WriteKey(paths.KeyFile, key);
        WriteAtomically(paths.CertFile, certificate.ExportCertificatePem() + "\n");
        return paths;
    }

    /// <summary>
    /// A subject encoded exactly as given, for names the builders will not make: each array is one RDN, in
    /// encoding order, and an array of several attributes is a multi-valued RDN (<c>CN=bob+OU=ops</c>).
    /// Values are UTF8String.
    /// </summary>
    public static X500DistinguishedName Subject(params (string Oid, string Value)[][] rdns)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            foreach (var rdn in rdns)
            {
                using (writer.PushSetOf())
                {
                    foreach (var (oid, value) in rdn)
                    {
                        using (writer.PushSequence())
                        {
                            writer.WriteObjectIdentifier(oid);
                            writer.WriteCharacterString(UniversalTagNumber.UTF8String, value);
                        }
                    }
                }
            }
        }

        return new X500DistinguishedName(writer.Encode());
    }

    /// <summary>Issues a server certificate, e.g. a replacement for certificate-reload tests.</summary>
    /// <remarks>Reusing a name overwrites the files; each file is replaced atomically, but a reader can
    /// still see the new certificate with the old key (or the reverse) between the two replacements.</remarks>
    public CertificatePaths IssueServer(
        string name,
        string? commonName = "localhost",
        IEnumerable<string>? dnsNames = null,
        IEnumerable<IPAddress>? ipAddresses = null,
        DateTimeOffset? notBefore = null,
        DateTimeOffset? notAfter = null,
        TestCertificateAuthority? issuer = null)
    {
        var sans = new SubjectAlternativeNameBuilder();
        foreach (var dnsName in dnsNames ?? ["localhost"])
        {
            sans.AddDnsName(dnsName);
        }

        foreach (var address in ipAddresses ?? [IPAddress.Loopback])
        {
            sans.AddIpAddress(address);
        }

        return Issue(name, SubjectOf(commonName, organizationalUnit: null), sans, [ServerAuth, ClientAuth], notBefore, notAfter, issuer);
    }

    /// <summary>A second, self-signed root that nothing trusts: certificates it issues must be refused.</summary>
    /// <param name="keyUsage">The CA's key usage; by default certificate and CRL signing.</param>
    public TestCertificateAuthority CreateOtherAuthority(string name = "other-ca", string commonName = "EtcdShield Untrusted Test CA", X509KeyUsageFlags? keyUsage = null) =>
        CreateAuthority(name, AuthoritySubject(commonName), parent: null, keyUsage);

    /// <summary>
    /// A new self-signed root with the same subject as <paramref name="renewing"/> and a new key, as kubeadm
    /// renews a CA: certificates and CRLs of the two tell them apart only by key identifier and signature.
    /// </summary>
    public TestCertificateAuthority CreateRenewedAuthority(string name, TestCertificateAuthority renewing) =>
        CreateAuthority(name, renewing.Certificate.SubjectName, parent: null);

    /// <summary>Writes <c>name.crl.pem</c> holding the given DER CRLs (e.g. from <see cref="TestCrl"/>) as PEM blocks, in order.</summary>
    public string WriteCrlFile(string name, params IEnumerable<byte[]> crls)
    {
        var path = PathFor(name + ".crl.pem");
        WriteAtomically(path, string.Concat(crls.Select(der => new string(PemEncoding.Write("X509 CRL", der)) + "\n")));
        return path;
    }

    /// <summary>An intermediate CA under <paramref name="parent"/> (the root by default); leaves it issues carry it in their PEM file.</summary>
    public TestCertificateAuthority CreateIntermediateAuthority(string name, string commonName, TestCertificateAuthority? parent = null) =>
        CreateAuthority(name, AuthoritySubject(commonName), parent ?? Authority);

    /// <summary>Writes <c>name.crl.pem</c>, a CRL from <paramref name="issuer"/> (the root by default) revoking the given certificates.</summary>
    public string WriteCrl(string name, IEnumerable<CertificatePaths> revoked, TestCertificateAuthority? issuer = null, DateTimeOffset? nextUpdate = null)
    {
        issuer ??= Authority;
        var builder = new CertificateRevocationListBuilder();
        var now = DateTimeOffset.UtcNow;
        foreach (var paths in revoked)
        {
            using var certificate = paths.LoadCertificate();
            builder.AddEntry(certificate, now - TimeSpan.FromMinutes(1), X509RevocationReason.KeyCompromise);
        }

        var der = builder.Build(issuer.Certificate, new BigInteger(issuer.TakeCrlNumber()), nextUpdate ?? now.AddDays(7), HashAlgorithmName.SHA256, thisUpdate: now - TimeSpan.FromMinutes(1));
        var path = PathFor(name + ".crl.pem");
        WriteAtomically(path, new string(PemEncoding.Write("X509 CRL", der)) + "\n");
        return path;
    }

    public void Dispose()
    {
        lock (gate)
        {
            foreach (var authority in authorities)
            {
                authority.Dispose();
            }

            authorities.Clear();
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp directory must not fail the tests that used it.
        }
    }

    private TestCertificateAuthority CreateAuthority(string name, X500DistinguishedName subject, TestCertificateAuthority? parent, X509KeyUsageFlags? keyUsage = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(keyUsage ?? (X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature), critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));

        // A year back, so tests can issue leaves (e.g. expired ones) with old validity inside the CA's own.
        var notBefore = DateTimeOffset.UtcNow.AddYears(-1);
        X509Certificate2 certificate;
        if (parent is null)
        {
            certificate = request.CreateSelfSigned(notBefore, notBefore.AddYears(11));
        }
        else
        {
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(parent.Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
            using var withoutKey = request.Create(parent.Certificate, notBefore, parent.Certificate.NotAfter.AddDays(-1), NewSerialNumber());
            certificate = withoutKey.CopyWithPrivateKey(key);
        }

        var certFile = PathFor(name + ".pem");
        var keyFile = PathFor(name + "-key.pem");
        WriteKey(keyFile, key);
        WriteAtomically(certFile, certificate.ExportCertificatePem() + "\n");

        var authority = new TestCertificateAuthority(name, certificate, certFile, keyFile, parent);
        lock (gate)
        {
            authorities.Add(authority);
        }

        return authority;
    }

    private static X500DistinguishedName AuthoritySubject(string commonName)
    {
        // The builder encodes RDNs in reverse order of adding, so the most specific goes first to get
        // the conventional "O=..., CN=..." encoding.
        var subject = new X500DistinguishedNameBuilder();
        subject.AddCommonName(commonName);
        subject.AddOrganizationName("EtcdShield Tests");
        return subject.Build();
    }

    private static X500DistinguishedName SubjectOf(string? commonName, string? organizationalUnit)
    {
        // Added most specific first: the builder reverses, so the encoding reads "OU=..., CN=...".
        var subject = new X500DistinguishedNameBuilder();
        if (commonName is not null)
        {
            subject.AddCommonName(commonName);
        }

        if (organizationalUnit is not null)
        {
            subject.AddOrganizationalUnitName(organizationalUnit);
        }

        return subject.Build();
    }

    private CertificatePaths Issue(
        string name,
        X500DistinguishedName subjectName,
        SubjectAlternativeNameBuilder? sans,
        Oid[] extendedKeyUsages,
        DateTimeOffset? notBefore,
        DateTimeOffset? notAfter,
        TestCertificateAuthority? issuer)
    {
        issuer ??= Authority;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subjectName, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([.. extendedKeyUsages], critical: false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer.Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        if (sans is not null)
        {
            // RFC 5280: the SAN extension must be critical when the subject is empty.
            request.CertificateExtensions.Add(sans.Build(critical: subjectName.RawData.Length <= 2));
        }

        var now = DateTimeOffset.UtcNow;
        // A year, as kubeadm issues them: well outside the proxy's default 30-day expiry warning.
        using var certificate = request.Create(issuer.Certificate, notBefore ?? now - ClockSkew, notAfter ?? now.AddDays(365), NewSerialNumber());

        var pem = new StringBuilder(certificate.ExportCertificatePem()).Append('\n');
        foreach (var link in issuer.ChainBelowRoot())
        {
            pem.Append(link.ExportCertificatePem()).Append('\n');
        }

        var paths = new CertificatePaths(PathFor(name + ".pem"), PathFor(name + "-key.pem"));
        WriteKey(paths.KeyFile, key);
        WriteAtomically(paths.CertFile, pem.ToString());
        return paths;
    }

    private string PathFor(string fileName)
    {
        // Names become file names; refusing anything else keeps a test from writing outside the directory.
        if (!SafeFileName().IsMatch(fileName))
        {
            throw new ArgumentException($"'{fileName}' is not a plain file name.", nameof(fileName));
        }

        return Path.Combine(Directory, fileName);
    }

    private static void WriteKey(string path, ECDsa key) =>
        // PKCS#8 "PRIVATE KEY" is what Go's crypto/tls and Python's ssl both read.
        WriteAtomically(path, key.ExportPkcs8PrivateKeyPem() + "\n", UnixFileMode.UserRead | UnixFileMode.UserWrite);

    // Written beside the target and renamed over it, so a process watching the file (a reloading
    // server) never reads a half-written one.
    private static void WriteAtomically(string path, string contents, UnixFileMode? mode = null)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, contents);
        if (mode is { } unixMode && !OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temporary, unixMode);
        }

        File.Move(temporary, path, overwrite: true);
    }

    private static byte[] NewSerialNumber()
    {
        // Positive (top bit clear) and without a leading zero byte, as DER INTEGER serials should be.
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] = (byte)((serial[0] & 0x7F) | 0x40);
        return serial;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex SafeFileName();
}
