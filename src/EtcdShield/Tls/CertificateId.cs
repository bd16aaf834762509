using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.Tls;

/// <summary>
/// What a CRL names a certificate by: its issuer and serial number. Kept for each certificate of a client's chain
/// when it connects, so that a CRL loaded later also applies to connections already open.
/// </summary>
internal readonly record struct CertificateId(string Issuer, string Serial)
{
    public static CertificateId Of(X509Certificate2 certificate) =>
        new(IssuerKey(certificate.IssuerName), RevocationList.NormalizeSerial(certificate.SerialNumber));

    public static IReadOnlyList<CertificateId> Of(X509Chain chain) =>
        chain.ChainElements.Select(element => Of(element.Certificate)).ToList();

    internal static string IssuerKey(X500DistinguishedName issuer) => Convert.ToHexString(issuer.RawData);
}
