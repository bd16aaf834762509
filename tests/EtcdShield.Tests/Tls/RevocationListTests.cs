using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Tls;

namespace EtcdShield.Tests.Tls;

public sealed class RevocationListTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-crl").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static X509Certificate2 Authority(string name, bool ecdsa)
    {
        CertificateRequest request = ecdsa
            ? new CertificateRequest($"CN={name}", ECDsa.Create(ECCurve.NamedCurves.nistP256), HashAlgorithmName.SHA256)
            : new CertificateRequest($"CN={name}", RSA.Create(2048), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    /// <summary>A CA as kubeadm and the test PKI make them: with a subject key identifier, so its CRLs carry the authority key identifier.</summary>
    private static X509Certificate2 KeyedAuthority(string name, X509KeyUsageFlags usage = X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign)
    {
        var request = new CertificateRequest($"CN={name}", ECDsa.Create(ECCurve.NamedCurves.nistP256), HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(usage, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    private static RevocationList Parse(TestCrl crl, params X509Certificate2[] authorities) =>
        RevocationList.Parse(crl.Encode(), [.. authorities], "test.crl");

    private static string Refusal(TestCrl crl, params X509Certificate2[] authorities) =>
        Assert.Throws<ConfigurationException>(() => Parse(crl, authorities)).Message;

    private static X509Certificate2 Client(X509Certificate2 authority, string name, long serial)
    {
        // The same key type as the issuer: CertificateRequest.Create signs with the issuer's key of that type.
        using AsymmetricAlgorithm key = authority.GetRSAPublicKey() is null ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        var request = key is RSA rsa
            ? new CertificateRequest($"CN={name}", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            : new CertificateRequest($"CN={name}", (ECDsa)key, HashAlgorithmName.SHA256);
        return request.Create(authority, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(10), new BigInteger(serial).ToByteArray(isUnsigned: true, isBigEndian: true));
    }

    private static byte[] Crl(X509Certificate2 authority, params X509Certificate2[] revoked)
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var certificate in revoked)
        {
            builder.AddEntry(certificate);
        }

        return builder.Build(authority, BigInteger.One, DateTimeOffset.UtcNow.AddDays(7), HashAlgorithmName.SHA256,
            authority.GetRSAPublicKey() is null ? null : RSASignaturePadding.Pkcs1);
    }

    private string Write(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Revokes_exactly_the_listed_serials_of_a_verified_crl(bool ecdsa)
    {
        using var ca = Authority("ca", ecdsa);
        using var revoked = Client(ca, "stolen", 0x80);
        using var kept = Client(ca, "fine", 0x81);
        var path = Write("crl.pem", PemEncoding.WriteString("X509 CRL", Crl(ca, revoked)));

        var list = Assert.Single(RevocationList.LoadFile(path, [ca]));

        Assert.True(list.Revokes(Serial(revoked)));
        Assert.False(list.Revokes(Serial(kept)));
    }

    [Fact]
    public void Reads_der_too()
    {
        using var ca = Authority("ca", ecdsa: true);
        using var revoked = Client(ca, "stolen", 7);
        var path = Path.Combine(_dir, "crl.der");
        File.WriteAllBytes(path, Crl(ca, revoked));

        Assert.True(Assert.Single(RevocationList.LoadFile(path, [ca])).Revokes(Serial(revoked)));
    }

    [Fact]
    public void Refuses_a_crl_signed_by_someone_else_under_the_same_name()
    {
        using var ca = Authority("ca", ecdsa: true);
        using var impostor = Authority("ca", ecdsa: true);
        var path = Write("crl.pem", PemEncoding.WriteString("X509 CRL", Crl(impostor)));

        var e = Assert.Throws<ConfigurationException>(() => RevocationList.LoadFile(path, [ca]));
        Assert.Contains("does not carry a valid signature", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_a_crl_of_an_untrusted_ca()
    {
        using var ca = Authority("ca", ecdsa: true);
        using var other = Authority("other", ecdsa: true);
        var path = Write("crl.pem", PemEncoding.WriteString("X509 CRL", Crl(other)));

        var e = Assert.Throws<ConfigurationException>(() => RevocationList.LoadFile(path, [ca]));
        Assert.Contains("not from a CA in --trusted-ca-file", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_garbage_with_a_clear_message()
    {
        using var ca = Authority("ca", ecdsa: true);
        var pem = Write("bad.pem", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
        var empty = Write("empty.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");

        Assert.Contains("not a DER or PEM", Assert.Throws<ConfigurationException>(() => RevocationList.LoadFile(pem, [ca])).Message, StringComparison.Ordinal);
        Assert.Contains("no PEM block", Assert.Throws<ConfigurationException>(() => RevocationList.LoadFile(empty, [ca])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reads_the_crl_number_and_the_signing_ca()
    {
        using var ca = KeyedAuthority("ca");

        var list = Parse(new TestCrl { Signer = ca, Number = 42 }, ca);

        Assert.Equal(new BigInteger(42), list.Number);
        Assert.Equal(CertificateId.IssuerKey(ca), list.Authority);
        Assert.Null(Parse(new TestCrl { Signer = ca, Number = null }, ca).Number);
    }

    [Fact]
    public void Finds_the_signer_among_every_trusted_ca_of_the_issuer_name()
    {
        using var old = KeyedAuthority("cluster-ca");
        using var renewed = KeyedAuthority("cluster-ca");
        using var unkeyedOld = Authority("cluster-ca", ecdsa: true);

        Assert.Equal(CertificateId.IssuerKey(renewed), Parse(new TestCrl { Signer = renewed }, old, renewed).Authority);
        Assert.Equal(CertificateId.IssuerKey(old), Parse(new TestCrl { Signer = old }, old, renewed).Authority);
        // Without key identifiers only the signature tells them apart.
        Assert.Equal(CertificateId.IssuerKey(renewed), Parse(new TestCrl { Signer = renewed }, unkeyedOld, renewed).Authority);
    }

    [Fact]
    public void Refuses_a_crl_of_a_ca_whose_key_usage_lacks_crl_sign()
    {
        using var ca = KeyedAuthority("certificates-only", X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.DigitalSignature);

        Assert.Contains("lacks cRLSign", Refusal(new TestCrl { Signer = ca }, ca), StringComparison.Ordinal);
    }

    [Fact]
    public void Takes_the_ca_of_the_name_that_may_sign_crls_when_another_with_the_same_key_may_not()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        X509Certificate2 Issue(X509KeyUsageFlags usage)
        {
            var request = new CertificateRequest("CN=reissued", key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(usage, true));
            return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        }

        using var restricted = Issue(X509KeyUsageFlags.KeyCertSign);
        using var full = Issue(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign);

        Assert.NotNull(Parse(new TestCrl { Signer = full }, restricted, full));
    }

    [Fact]
    public void Refuses_a_crl_whose_inner_and_outer_signature_algorithms_differ()
    {
        using var ca = KeyedAuthority("ca");

        var message = Refusal(new TestCrl { Signer = ca, InnerAlgorithm = "1.2.840.10045.4.3.3" }, ca);

        Assert.Contains("different signature algorithm", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_delta_crls()
    {
        using var ca = KeyedAuthority("ca");

        var message = Refusal(new TestCrl { Signer = ca, Number = 2, Extensions = [TestCrl.DeltaIndicator(1)] }, ca);

        Assert.Contains("is a delta CRL", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_crls_limited_by_an_issuing_distribution_point()
    {
        using var ca = KeyedAuthority("ca");

        Assert.Contains("issuingDistributionPoint", Refusal(new TestCrl { Signer = ca, Extensions = [TestCrl.OnlyUserCertificates()] }, ca), StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_unknown_critical_crl_extensions_and_ignores_unknown_non_critical_ones()
    {
        using var ca = KeyedAuthority("ca");

        Assert.Contains("critical extension 1.3.6.1.4.1.55555.1.1", Refusal(new TestCrl { Signer = ca, Extensions = [TestCrl.Unknown(critical: true)] }, ca), StringComparison.Ordinal);
        Assert.NotNull(Parse(new TestCrl { Signer = ca, Extensions = [TestCrl.Unknown(critical: false)] }, ca));
    }

    [Fact]
    public void Refuses_entries_with_unknown_critical_extensions_or_another_certificate_issuer()
    {
        using var ca = KeyedAuthority("ca");
        using var client = Client(ca, "client", 0x51);
        var issuer = new SubjectAlternativeNameBuilder();
        issuer.AddDnsName("other-ca.example");
        var certificateIssuer = new X509Extension("2.5.29.29", issuer.Build().RawData, critical: true);

        var unknown = Refusal(new TestCrl { Signer = ca, Revoked = [(TestCrl.SerialOf(client), [TestCrl.Unknown(critical: true)])] }, ca);
        var indirect = Refusal(new TestCrl { Signer = ca, Revoked = [(TestCrl.SerialOf(client), [certificateIssuer])] }, ca);
        var lenient = Parse(new TestCrl { Signer = ca, Revoked = [(TestCrl.SerialOf(client), [TestCrl.Unknown(critical: false)])] }, ca);

        Assert.Contains("entry with a critical extension", unknown, StringComparison.Ordinal);
        Assert.Contains("indirect CRL", indirect, StringComparison.Ordinal);
        Assert.True(lenient.Revokes(Serial(client)));
    }

    [Fact]
    public void Refuses_an_extension_given_twice()
    {
        using var ca = KeyedAuthority("ca");

        Assert.Contains("twice", Refusal(new TestCrl { Signer = ca, Extensions = [TestCrl.Unknown(false), TestCrl.Unknown(false)] }, ca), StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_bytes_after_the_crl()
    {
        using var ca = KeyedAuthority("ca");
        byte[] der = [.. new TestCrl { Signer = ca }.Encode(), 0x05, 0x00];

        Assert.Contains("not a DER", Assert.Throws<ConfigurationException>(() => RevocationList.Parse(der, [ca], "test.crl")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Of_two_lists_of_a_ca_the_higher_number_is_newer_and_then_the_later_this_update()
    {
        using var ca = KeyedAuthority("ca");
        var now = DateTimeOffset.UtcNow;

        Assert.True(Parse(new TestCrl { Signer = ca, Number = 3, ThisUpdate = now.AddHours(-1) }, ca).IsNewerThan(Parse(new TestCrl { Signer = ca, Number = 2, ThisUpdate = now }, ca)));
        Assert.True(Parse(new TestCrl { Signer = ca, Number = 2, ThisUpdate = now }, ca).IsNewerThan(Parse(new TestCrl { Signer = ca, Number = 2, ThisUpdate = now.AddHours(-1) }, ca)));
        Assert.True(Parse(new TestCrl { Signer = ca, Number = 0 }, ca).IsNewerThan(Parse(new TestCrl { Signer = ca, Number = null }, ca)));
    }

    [Fact]
    public void An_issuer_that_is_no_name_is_a_clear_refusal_not_an_exception()
    {
        using var ca = KeyedAuthority("ca");
        var writer = new System.Formats.Asn1.AsnWriter(System.Formats.Asn1.AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            using (writer.PushSequence())
            {
                writer.WriteInteger(1);
                using (writer.PushSequence())
                {
                    writer.WriteObjectIdentifier("1.2.840.10045.4.3.2");
                }

                using (writer.PushSequence())
                {
                    writer.WriteInteger(5);
                }

                writer.WriteUtcTime(DateTimeOffset.UtcNow);
            }

            using (writer.PushSequence())
            {
                writer.WriteObjectIdentifier("1.2.840.10045.4.3.2");
            }

            writer.WriteBitString([0]);
        }

        var e = Assert.Throws<ConfigurationException>(() => RevocationList.Parse(writer.Encode(), [ca], "test.crl"));
        Assert.Contains("is not from a CA in --trusted-ca-file", e.Message, StringComparison.Ordinal);
    }

    private static string Serial(X509Certificate2 certificate) => RevocationList.NormalizeSerial(certificate.SerialNumber);
}
