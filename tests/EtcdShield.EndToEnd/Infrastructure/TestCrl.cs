using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// A CRL encoded field by field, for the CRLs <see cref="CertificateRevocationListBuilder"/> will not make: delta
/// CRLs, critical extensions, entry extensions, signers without cRLSign, mismatched signature algorithms. Signed
/// with ECDSA or RSA PKCS#1 v1.5 and SHA-256 by <see cref="Signer"/>'s private key. Also linked into the unit tests.
/// </summary>
internal sealed class TestCrl
{
    private const string EcdsaSha256 = "1.2.840.10045.4.3.2";
    private const string RsaSha256 = "1.2.840.113549.1.1.11";

    /// <summary>Signs the CRL; its subject is the CRL's issuer and its key identifier the authority key identifier.</summary>
    public required X509Certificate2 Signer { get; init; }

    /// <summary>Null leaves the cRLNumber extension out.</summary>
    public BigInteger? Number { get; init; } = BigInteger.One;

    public DateTimeOffset ThisUpdate { get; init; } = DateTimeOffset.UtcNow.AddMinutes(-1);

    public DateTimeOffset NextUpdate { get; init; } = DateTimeOffset.UtcNow.AddDays(7);

    /// <summary>Serial numbers (big-endian, as in the certificate) with the extensions of their entry.</summary>
    public IReadOnlyList<(byte[] Serial, IReadOnlyList<X509Extension> Extensions)> Revoked { get; init; } = [];

    /// <summary>CRL extensions after the authority key identifier and the CRL number.</summary>
    public IReadOnlyList<X509Extension> Extensions { get; init; } = [];

    /// <summary>The algorithm named inside the signed part; null names the one really used, as it must.</summary>
    public string? InnerAlgorithm { get; init; }

    /// <summary>The serial number of a certificate as its CRL entry names it.</summary>
    public static byte[] SerialOf(X509Certificate2 certificate) => certificate.SerialNumberBytes.ToArray();

    /// <summary>A deltaCRLIndicator naming the base CRL's number (critical, as RFC 5280 requires).</summary>
    public static X509Extension DeltaIndicator(BigInteger baseNumber)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteInteger(baseNumber);
        return new X509Extension("2.5.29.27", writer.Encode(), critical: true);
    }

    /// <summary>An issuingDistributionPoint saying the CRL covers only end-entity certificates (critical, as RFC 5280 requires).</summary>
    public static X509Extension OnlyUserCertificates()
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteBoolean(true, new Asn1Tag(TagClass.ContextSpecific, 1));
        }

        return new X509Extension("2.5.29.28", writer.Encode(), critical: true);
    }

    /// <summary>An extension no one implements, under a private enterprise arc.</summary>
    public static X509Extension Unknown(bool critical)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteNull();
        return new X509Extension("1.3.6.1.4.1.55555.1.1", writer.Encode(), critical);
    }

    public byte[] Encode()
    {
        var outerAlgorithm = Signer.GetECDsaPrivateKey() is null ? RsaSha256 : EcdsaSha256;
        var tbs = new AsnWriter(AsnEncodingRules.DER);
        using (tbs.PushSequence())
        {
            tbs.WriteInteger(1);
            WriteAlgorithm(tbs, InnerAlgorithm ?? outerAlgorithm);
            tbs.WriteEncodedValue(Signer.SubjectName.RawData);
            tbs.WriteUtcTime(ThisUpdate);
            tbs.WriteUtcTime(NextUpdate);
            if (Revoked.Count > 0)
            {
                using (tbs.PushSequence())
                {
                    foreach (var (serial, extensions) in Revoked)
                    {
                        using (tbs.PushSequence())
                        {
                            tbs.WriteInteger(serial);
                            tbs.WriteUtcTime(ThisUpdate);
                            if (extensions.Count > 0)
                            {
                                WriteExtensions(tbs, extensions);
                            }
                        }
                    }
                }
            }

            var crlExtensions = new List<X509Extension>();
            if (Signer.Extensions.OfType<X509SubjectKeyIdentifierExtension>().FirstOrDefault() is { } keyId)
            {
                crlExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromSubjectKeyIdentifier(keyId));
            }

            if (Number is { } number)
            {
                var encoded = new AsnWriter(AsnEncodingRules.DER);
                encoded.WriteInteger(number);
                crlExtensions.Add(new X509Extension("2.5.29.20", encoded.Encode(), critical: false));
            }

            crlExtensions.AddRange(Extensions);
            if (crlExtensions.Count > 0)
            {
                using (tbs.PushSequence(new Asn1Tag(TagClass.ContextSpecific, 0, isConstructed: true)))
                {
                    WriteExtensions(tbs, crlExtensions);
                }
            }
        }

        var signed = tbs.Encode();
        var signature = Signer.GetECDsaPrivateKey() is { } ecdsa
            ? ecdsa.SignData(signed, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence)
            : Signer.GetRSAPrivateKey()!.SignData(signed, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);

        var crl = new AsnWriter(AsnEncodingRules.DER);
        using (crl.PushSequence())
        {
            crl.WriteEncodedValue(signed);
            WriteAlgorithm(crl, outerAlgorithm);
            crl.WriteBitString(signature);
        }

        return crl.Encode();
    }

    private static void WriteAlgorithm(AsnWriter writer, string oid)
    {
        using (writer.PushSequence())
        {
            writer.WriteObjectIdentifier(oid);
            if (oid == RsaSha256)
            {
                writer.WriteNull();
            }
        }
    }

    private static void WriteExtensions(AsnWriter writer, IEnumerable<X509Extension> extensions)
    {
        using (writer.PushSequence())
        {
            foreach (var extension in extensions)
            {
                using (writer.PushSequence())
                {
                    writer.WriteObjectIdentifier(extension.Oid!.Value!);
                    if (extension.Critical)
                    {
                        writer.WriteBoolean(true);
                    }

                    writer.WriteOctetString(extension.RawData);
                }
            }
        }
    }
}
