using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>A CA created by <see cref="TestPki"/>; pass it as an issuer to sign certificates with it.</summary>
public sealed class TestCertificateAuthority : IDisposable
{
    private long nextCrlNumber = 1;

    internal TestCertificateAuthority(string name, X509Certificate2 certificate, string certFile, string keyFile, TestCertificateAuthority? parent)
    {
        Name = name;
        Certificate = certificate;
        CertFile = certFile;
        KeyFile = keyFile;
        Parent = parent;
    }

    public string Name { get; }

    /// <summary>The CA certificate with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>PEM file with just this CA's certificate: the trust anchor for a root, a chain link for an intermediate.</summary>
    public string CertFile { get; }

    public string KeyFile { get; }

    /// <summary>The CA that signed this one; null for a self-signed root.</summary>
    public TestCertificateAuthority? Parent { get; }

    /// <summary>This CA followed by its issuers, excluding the root: what a leaf's PEM file appends so that a
    /// peer trusting only the root can build the chain.</summary>
    internal IEnumerable<X509Certificate2> ChainBelowRoot()
    {
        for (var ca = this; ca.Parent is not null; ca = ca.Parent)
        {
            yield return ca.Certificate;
        }
    }

    internal long TakeCrlNumber() => Interlocked.Increment(ref nextCrlNumber) - 1;

    public void Dispose() => Certificate.Dispose();
}
