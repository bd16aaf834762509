using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// A certificate and its private key as PEM files: what etcd, etcdctl and Go/Python clients take.
/// <paramref name="CertFile"/> holds the leaf followed by any intermediate CAs; <paramref name="KeyFile"/>
/// holds an unencrypted PKCS#8 "PRIVATE KEY".
/// </summary>
public sealed record CertificatePaths(string CertFile, string KeyFile)
{
    /// <summary>The leaf certificate without its key. The caller disposes it.</summary>
    public X509Certificate2 LoadCertificate() => X509Certificate2.CreateFromPem(File.ReadAllText(CertFile));

    /// <summary>The leaf with its private key, ready for SslStream or HttpClientHandler. The caller disposes it.</summary>
    public X509Certificate2 LoadWithPrivateKey() => X509Certificate2.CreateFromPemFile(CertFile, KeyFile);
}
