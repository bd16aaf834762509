using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.LoadGen.Infrastructure;

/// <summary>
/// The run's throw-away PKI, all ECDSA P-256: a CA, one server certificate for 127.0.0.1 that etcd, etcd grpc-proxy
/// and EtcdShield all present (so every target does the same TLS work), and one client certificate the load uses.
/// </summary>
internal sealed class BenchPki : IDisposable
{
    public const string ClientCommonName = "etcdshield-bench";

    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    private BenchPki(string directory, X509Certificate2 ca, X509Certificate2 client)
    {
        Directory = directory;
        Authority = ca;
        ClientCertificate = client;
    }

    public string Directory { get; }

    public string CaFile => Path.Combine(Directory, "ca.pem");

    public string ServerCertFile => Path.Combine(Directory, "server.pem");

    public string ServerKeyFile => Path.Combine(Directory, "server-key.pem");

    /// <summary>The CA alone (no private key): what the load generator trusts servers by.</summary>
    public X509Certificate2 Authority { get; }

    /// <summary>The client certificate with its private key, loaded so SslStream can present it.</summary>
    public X509Certificate2 ClientCertificate { get; }

    public static BenchPki Create(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        var notBefore = DateTimeOffset.UtcNow.AddHours(-1);
        var notAfter = DateTimeOffset.UtcNow.AddDays(2);

        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=EtcdShield bench CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(notBefore, notAfter.AddDays(1));
        File.WriteAllText(Path.Combine(directory, "ca.pem"), ca.ExportCertificatePem());

        // etcd 3.4 also dials itself (its HTTP gateway) with the server certificate, so it needs clientAuth too.
        var sans = new SubjectAlternativeNameBuilder();
        sans.AddIpAddress(IPAddress.Loopback);
        sans.AddDnsName("localhost");
        WriteLeaf(directory, "server", "CN=localhost", ca, sans, [ServerAuth, ClientAuth]);
        var clientPfx = WriteLeaf(directory, "client", "CN=" + ClientCommonName, ca, null, [ClientAuth]);

        var authority = X509CertificateLoader.LoadCertificate(ca.RawData);
        var client = X509CertificateLoader.LoadPkcs12(clientPfx, null);
        return new BenchPki(directory, authority, client);
    }

    /// <summary>For a TLS client's certificate check: the name is checked by SslStream (127.0.0.1 is in the certificate), the chain must end at this run's CA.</summary>
    public bool IssuedServer(X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.CustomTrustStore.Add(Authority);
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(leaf);
    }

    public void Dispose()
    {
        Authority.Dispose();
        ClientCertificate.Dispose();
    }

    private static byte[] WriteLeaf(
        string directory,
        string name,
        string subject,
        X509Certificate2 issuer,
        SubjectAlternativeNameBuilder? sans,
        Oid[] usages)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([.. usages], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        if (sans is not null)
        {
            request.CertificateExtensions.Add(sans.Build());
        }

        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var issued = request.Create(issuer, issuer.NotBefore.AddMinutes(1), issuer.NotAfter.AddDays(-1), serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        File.WriteAllText(Path.Combine(directory, name + ".pem"), issued.ExportCertificatePem());
        File.WriteAllText(Path.Combine(directory, name + "-key.pem"), key.ExportPkcs8PrivateKeyPem());
        File.SetUnixFileMode(Path.Combine(directory, name + "-key.pem"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return withKey.Export(X509ContentType.Pkcs12);
    }
}
