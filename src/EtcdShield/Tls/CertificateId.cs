using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.Tls;

/// <summary>
/// What a CRL names a certificate by: its issuer and serial number. Kept for each certificate of a client's chain
/// when it connects, so that a CRL loaded later also applies to connections already open.
/// </summary>
/// <param name="Issuer">The CA that issued it, by name and key (<see cref="IssuerKey"/>): a CA renewed under the
/// same name with a new key has CRLs and serial numbers of its own.</param>
internal readonly record struct CertificateId(string Issuer, string Serial)
{
    /// <summary>Each certificate of a built chain, its issuer being the next element (a self-signed root its own).</summary>
    public static IReadOnlyList<CertificateId> Of(X509Chain chain)
    {
        var elements = chain.ChainElements;
        var ids = new List<CertificateId>(elements.Count);
        for (var i = 0; i < elements.Count; i++)
        {
            var certificate = elements[i].Certificate;
            var issuer = i + 1 < elements.Count ? elements[i + 1].Certificate : certificate;
            ids.Add(new CertificateId(IssuerKey(issuer), RevocationList.NormalizeSerial(certificate.SerialNumber)));
        }

        return ids;
    }

    /// <summary>A trusted CA as it ends a built chain: the last element counts as its own issuer.</summary>
    public static CertificateId OfAnchor(X509Certificate2 authority) =>
        new(IssuerKey(authority), RevocationList.NormalizeSerial(authority.SerialNumber));

    /// <summary>A CA as the issuer of certificates and CRLs: its subject and the SHA-256 of its public key.</summary>
    internal static string IssuerKey(X509Certificate2 authority) =>
        Convert.ToHexString(authority.SubjectName.RawData) + "/" +
        Convert.ToHexStringLower(SHA256.HashData(authority.PublicKey.ExportSubjectPublicKeyInfo()));
}
