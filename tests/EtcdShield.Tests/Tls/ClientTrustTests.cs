using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Tls;

namespace EtcdShield.Tests.Tls;

public sealed class ClientTrustTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-trust").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static X509Certificate2 Authority(string name)
    {
        var request = new CertificateRequest($"CN={name}", ECDsa.Create(ECCurve.NamedCurves.nistP256), HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    private static byte[] Crl(X509Certificate2 signer, long number, params byte[][] revoked) => new TestCrl
    {
        Signer = signer,
        Number = new BigInteger(number),
        Revoked = [.. revoked.Select(serial => (serial, (IReadOnlyList<X509Extension>)[]))],
    }.Encode();

    private string Write(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    private static string Pem(params byte[][] crls) => string.Concat(crls.Select(der => PemEncoding.WriteString("X509 CRL", der) + "\n"));

    private static CertificateId Issued(X509Certificate2 issuer, byte[] serial) =>
        new(CertificateId.IssuerKey(issuer), RevocationList.NormalizeSerial(Convert.ToHexString(serial)));

    [Fact]
    public void Revocations_belong_to_the_ca_that_signed_them_not_to_its_name()
    {
        using var old = Authority("cluster-ca");
        using var renewed = Authority("cluster-ca");
        byte[] serial = [0x12, 0x34];
        var crls = Write("crl.pem", Pem(Crl(old, 7), Crl(renewed, 1, serial)));
        var cas = Write("ca.pem", old.ExportCertificatePem() + "\n" + renewed.ExportCertificatePem() + "\n");

        var trust = ClientTrust.Load(cas, crls, new RevocationHistory());

        Assert.Equal(2, trust.Revocations.Count);
        Assert.NotNull(trust.RevokedIn([Issued(renewed, serial)]));
        Assert.Null(trust.RevokedIn([Issued(old, serial)]));
    }

    [Fact]
    public void Of_several_crls_of_one_ca_in_a_file_the_highest_number_is_in_force()
    {
        using var ca = Authority("ca");
        byte[] serial = [0x55];
        var crls = Write("crl.pem", Pem(Crl(ca, 2, serial), Crl(ca, 1)));
        var cas = Write("ca.pem", ca.ExportCertificatePem());

        var trust = ClientTrust.Load(cas, crls, new RevocationHistory());

        Assert.Equal(new BigInteger(2), Assert.Single(trust.Revocations).Number);
        Assert.NotNull(trust.RevokedIn([Issued(ca, serial)]));
    }

    [Fact]
    public void A_reload_with_an_older_crl_fails_for_the_life_of_the_history()
    {
        using var ca = Authority("ca");
        var cas = Write("ca.pem", ca.ExportCertificatePem());
        var crls = Write("crl.pem", Pem(Crl(ca, 1)));
        var older = File.ReadAllText(crls);
        var history = new RevocationHistory();
        ClientTrust.Load(cas, crls, history);
        File.WriteAllText(crls, Pem(Crl(ca, 2, [0x01])));
        ClientTrust.Load(cas, crls, history);

        File.WriteAllText(crls, older);

        Assert.Contains("older than CRL number 2", Assert.Throws<ConfigurationException>(() => ClientTrust.Load(cas, crls, history)).Message, StringComparison.Ordinal);
        // Another process (or a restart) has no history: the same file loads.
        Assert.Single(ClientTrust.Load(cas, crls, new RevocationHistory()).Revocations);
    }
}
