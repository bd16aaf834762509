using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.Tls;

namespace EtcdShield.Fuzz;

/// <summary>
/// A <c>--client-crl-file</c>, which whoever publishes CRLs (or can swap the file) controls, parsed against two
/// trusted CAs (ECDSA and RSA) so that mutations of genuine CRLs reach the signature check and past it. The
/// parser refuses with <see cref="ConfigurationException"/>.
/// </summary>
internal sealed class RevocationListTarget : FuzzTarget
{
    private const string Authorities = "crl-authorities.pem";

    public override string Name => "crl";

    public override FuzzAction Prepare(string directory)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(Path.Combine(directory, Authorities));
        return input =>
        {
            try
            {
                var list = RevocationList.Parse(input.ToArray(), authorities, "fuzz");
                _ = list.Revokes("01");
            }
            catch (ConfigurationException)
            {
            }
        };
    }

    public override IEnumerable<(string Name, byte[] Bytes)> Seeds(string directory)
    {
        using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var rsa = RSA.Create(2048);
        using var ecdsaCa = Authority(new CertificateRequest("CN=fuzz-ecdsa-ca,O=EtcdShield", ecdsa, HashAlgorithmName.SHA256));
        using var rsaCa = Authority(new CertificateRequest("CN=fuzz-rsa-ca,O=EtcdShield", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
        File.WriteAllText(Path.Combine(directory, Authorities), ecdsaCa.ExportCertificatePem() + "\n" + rsaCa.ExportCertificatePem() + "\n");

        var now = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var empty = new CertificateRevocationListBuilder();
        var some = new CertificateRevocationListBuilder();
        some.AddEntry([0x01], now, X509RevocationReason.KeyCompromise);
        some.AddEntry([0x00, 0xff, 0x10], now.AddHours(1));
        yield return ("ecdsa-empty", empty.Build(ecdsaCa, BigInteger.One, now.AddDays(7), HashAlgorithmName.SHA256, thisUpdate: now));
        yield return ("ecdsa-two", some.Build(ecdsaCa, new BigInteger(2), now.AddDays(7), HashAlgorithmName.SHA384, thisUpdate: now));
        yield return ("rsa-two", some.Build(rsaCa, new BigInteger(3), now.AddDays(7), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1, now));
    }

    private static X509Certificate2 Authority(CertificateRequest request)
    {
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var start = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        return request.CreateSelfSigned(start, start.AddYears(10));
    }
}
