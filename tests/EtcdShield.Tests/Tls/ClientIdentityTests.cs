using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Tls;

namespace EtcdShield.Tests.Tls;

public sealed class ClientIdentityTests
{
    [Fact]
    public void Reads_common_name_units_dns_and_uri_names()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=kube-apiserver, OU=control-plane, O=k8s", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("api.cluster.local");
        san.AddUri(new Uri("spiffe://cluster.local/ns/kube-system/sa/apiserver"));
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddHours(1));

        var identity = ClientIdentity.FromCertificate(cert);

        Assert.Equal("kube-apiserver", identity.CommonName);
        Assert.Equal(["control-plane"], identity.OrganizationalUnits);
        Assert.Equal(["api.cluster.local"], identity.DnsNames);
        Assert.Equal(["spiffe://cluster.local/ns/kube-system/sa/apiserver"], identity.Uris);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(cert.RawData)), identity.Sha256Fingerprint);
        Assert.Contains("CN=kube-apiserver", identity.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_certificate_without_names_has_an_empty_identity()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var cert = new CertificateRequest("O=nobody", key, HashAlgorithmName.SHA256)
            .CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddHours(1));

        var identity = ClientIdentity.FromCertificate(cert);

        Assert.Null(identity.CommonName);
        Assert.Empty(identity.DnsNames);
        Assert.Empty(identity.Uris);
    }
}
