using System.Formats.Asn1;
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

    private const string CommonName = "2.5.4.3";
    private const string Unit = "2.5.4.11";

    /// <summary>A subject encoded exactly as given: each array one RDN, in order, several attributes a multi-valued RDN.</summary>
    private static X500DistinguishedName Subject(params (string Oid, UniversalTagNumber Type, string Value)[][] rdns)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            foreach (var rdn in rdns)
            {
                using (writer.PushSetOf())
                {
                    foreach (var (oid, type, value) in rdn)
                    {
                        using (writer.PushSequence())
                        {
                            writer.WriteObjectIdentifier(oid);
                            if (type == UniversalTagNumber.UniversalString)
                            {
                                // AsnWriter has no UniversalString: UCS-4, big-endian.
                                var content = new System.Text.UTF32Encoding(bigEndian: true, byteOrderMark: false).GetBytes(value);
                                writer.WriteEncodedValue([(byte)UniversalTagNumber.UniversalString, (byte)content.Length, .. content]);
                            }
                            else
                            {
                                writer.WriteCharacterString(type, value);
                            }
                        }
                    }
                }
            }
        }

        return new X500DistinguishedName(writer.Encode());
    }

    private static ClientIdentity IdentityOf(X500DistinguishedName subject, params X509Extension[] extensions)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        foreach (var extension in extensions)
        {
            request.CertificateExtensions.Add(extension);
        }

        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddHours(1));
        return ClientIdentity.FromCertificate(cert);
    }

    [Theory]
    [InlineData("alice", "admin")]
    [InlineData("admin", "alice")]
    public void Two_common_names_are_refused_whichever_comes_last(string first, string second)
    {
        var identity = IdentityOf(Subject([(CommonName, UniversalTagNumber.UTF8String, first)], [(CommonName, UniversalTagNumber.PrintableString, second)]));

        Assert.Equal("its subject has more than one CN", identity.Refusal);
        Assert.Null(identity.CommonName);
        Assert.Empty(identity.OrganizationalUnits);
    }

    [Theory]
    [InlineData(CommonName, Unit)]
    [InlineData(Unit, "2.5.4.10")]
    public void A_multi_valued_rdn_is_a_refusal_not_an_exception(string firstOid, string secondOid)
    {
        var identity = IdentityOf(Subject([(firstOid, UniversalTagNumber.UTF8String, "bob"), (secondOid, UniversalTagNumber.UTF8String, "ops")]));

        Assert.Equal("its subject has a multi-valued RDN", identity.Refusal);
        Assert.Null(identity.CommonName);
    }

    [Fact]
    public void A_common_name_in_a_string_type_the_proxy_does_not_read_is_refused()
    {
        var identity = IdentityOf(Subject([(CommonName, UniversalTagNumber.UniversalString, "admin")]));

        Assert.Equal("its subject's CN is not a string the proxy reads", identity.Refusal);
    }

    [Fact]
    public void Several_organizational_units_are_a_set_each_read_whole()
    {
        var identity = IdentityOf(Subject(
            [(Unit, UniversalTagNumber.UTF8String, "ops")],
            [(Unit, UniversalTagNumber.BMPString, "ops,admin")],
            [(CommonName, UniversalTagNumber.T61String, "backup")]));

        Assert.Null(identity.Refusal);
        Assert.Equal("backup", identity.CommonName);
        Assert.Equal(["ops", "ops,admin"], identity.OrganizationalUnits);
    }

    [Fact]
    public void A_malformed_subject_alternative_name_is_a_refusal()
    {
        var identity = IdentityOf(
            Subject([(CommonName, UniversalTagNumber.UTF8String, "admin")]),
            new X509Extension("2.5.29.17", [0x30, 0x05, 0x82, 0x09, 0x61], critical: false));

        Assert.StartsWith("its names are not valid DER", identity.Refusal, StringComparison.Ordinal);
        Assert.Null(identity.CommonName);
        Assert.Empty(identity.DnsNames);
    }
}
