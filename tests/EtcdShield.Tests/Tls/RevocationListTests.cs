using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
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

        Assert.True(list.Revokes(revoked));
        Assert.False(list.Revokes(kept));
        Assert.Equal(1, list.Count);
    }

    [Fact]
    public void Reads_der_too()
    {
        using var ca = Authority("ca", ecdsa: true);
        using var revoked = Client(ca, "stolen", 7);
        var path = Path.Combine(_dir, "crl.der");
        File.WriteAllBytes(path, Crl(ca, revoked));

        Assert.True(Assert.Single(RevocationList.LoadFile(path, [ca])).Revokes(revoked));
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
}
