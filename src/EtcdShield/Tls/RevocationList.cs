using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;

namespace EtcdShield.Tls;

/// <summary>
/// One certificate revocation list from <c>--client-crl-file</c>: whose certificates it revokes and which serial
/// numbers. Its signature is checked against the trusted CAs when it is loaded, so a CRL file someone else slipped
/// in cannot un-revoke anything or lock clients out by name alone.
/// </summary>
internal sealed class RevocationList
{
    private readonly HashSet<string> _revokedSerials;

    private RevocationList(X500DistinguishedName issuer, HashSet<string> revokedSerials, DateTimeOffset thisUpdate, DateTimeOffset? nextUpdate)
    {
        Issuer = issuer;
        _revokedSerials = revokedSerials;
        ThisUpdate = thisUpdate;
        NextUpdate = nextUpdate;
    }

    public X500DistinguishedName Issuer { get; }

    public DateTimeOffset ThisUpdate { get; }

    public DateTimeOffset? NextUpdate { get; }

    public int Count => _revokedSerials.Count;

    public bool Revokes(X509Certificate2 certificate) => Revokes(NormalizeSerial(certificate.SerialNumber));

    /// <param name="serial">As <see cref="NormalizeSerial"/> gives it.</param>
    public bool Revokes(string serial) => _revokedSerials.Contains(serial);

    /// <summary>Every CRL in the file (PEM blocks, or one DER CRL), each verified against <paramref name="authorities"/>.</summary>
    public static IReadOnlyList<RevocationList> LoadFile(string path, X509Certificate2Collection authorities)
    {
        byte[] content;
        try
        {
            content = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"cannot read --client-crl-file {path}: {e.Message}", e);
        }

        var lists = new List<RevocationList>();
        var text = System.Text.Encoding.ASCII.GetString(content);
        if (text.Contains("-----BEGIN", StringComparison.Ordinal))
        {
            foreach (var der in PemBlocks(text, "X509 CRL"))
            {
                lists.Add(Parse(der, authorities, path));
            }

            if (lists.Count == 0)
            {
                throw new ConfigurationException($"--client-crl-file {path} holds no PEM block 'X509 CRL'");
            }
        }
        else
        {
            lists.Add(Parse(content, authorities, path));
        }

        return lists;
    }

    internal static RevocationList Parse(byte[] der, X509Certificate2Collection authorities, string source)
    {
        try
        {
            var outer = new AsnReader(der, AsnEncodingRules.DER);
            var certificateList = outer.ReadSequence();
            var tbsEncoded = certificateList.PeekEncodedValue();
            var tbs = certificateList.ReadSequence();
            var algorithm = certificateList.ReadSequence().ReadObjectIdentifier();
            var signature = certificateList.ReadBitString(out _);

            if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
            {
                tbs.ReadInteger();
            }

            tbs.ReadSequence();
            var issuer = new X500DistinguishedName(tbs.ReadEncodedValue().Span);
            var thisUpdate = ReadTime(tbs);
            DateTimeOffset? nextUpdate = null;
            if (tbs.HasData && IsTime(tbs.PeekTag()))
            {
                nextUpdate = ReadTime(tbs);
            }

            var serials = new HashSet<string>(StringComparer.Ordinal);
            if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
            {
                var entries = tbs.ReadSequence();
                while (entries.HasData)
                {
                    var entry = entries.ReadSequence();
                    serials.Add(NormalizeSerial(Convert.ToHexString(entry.ReadIntegerBytes().Span)));
                }
            }

            var signer = authorities.FirstOrDefault(a => a.SubjectName.RawData.AsSpan().SequenceEqual(issuer.RawData))
                ?? throw new ConfigurationException($"--client-crl-file {source}: the CRL of '{issuer.Name}' is not from a CA in --trusted-ca-file");
            if (!SignatureHolds(signer, algorithm, tbsEncoded.Span, signature))
            {
                throw new ConfigurationException($"--client-crl-file {source}: the CRL of '{issuer.Name}' does not carry a valid signature of that CA");
            }

            return new RevocationList(issuer, serials, thisUpdate, nextUpdate);
        }
        catch (AsnContentException e)
        {
            throw new ConfigurationException($"--client-crl-file {source}: not a DER or PEM certificate revocation list: {e.Message}", e);
        }
    }

    private static bool SignatureHolds(X509Certificate2 signer, string algorithm, ReadOnlySpan<byte> signed, byte[] signature)
    {
        var (hash, isRsa) = algorithm switch
        {
            "1.2.840.113549.1.1.11" => (HashAlgorithmName.SHA256, true),
            "1.2.840.113549.1.1.12" => (HashAlgorithmName.SHA384, true),
            "1.2.840.113549.1.1.13" => (HashAlgorithmName.SHA512, true),
            "1.2.840.10045.4.3.2" => (HashAlgorithmName.SHA256, false),
            "1.2.840.10045.4.3.3" => (HashAlgorithmName.SHA384, false),
            "1.2.840.10045.4.3.4" => (HashAlgorithmName.SHA512, false),
            _ => throw new ConfigurationException($"the CRL is signed with algorithm {algorithm}; supported are RSA PKCS#1 v1.5 and ECDSA with SHA-256, SHA-384 or SHA-512"),
        };

        if (isRsa)
        {
            using var rsa = signer.GetRSAPublicKey();
            return rsa is not null && rsa.VerifyData(signed, signature, hash, RSASignaturePadding.Pkcs1);
        }

        using var ecdsa = signer.GetECDsaPublicKey();
        return ecdsa is not null && ecdsa.VerifyData(signed, signature, hash, DSASignatureFormat.Rfc3279DerSequence);
    }

    private static bool IsTime(Asn1Tag tag) =>
        tag.HasSameClassAndValue(Asn1Tag.UtcTime) || tag.HasSameClassAndValue(Asn1Tag.GeneralizedTime);

    private static DateTimeOffset ReadTime(AsnReader reader) =>
        reader.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? reader.ReadUtcTime() : reader.ReadGeneralizedTime();

    /// <summary>Upper-case hex without the leading zero bytes DER adds to keep a serial positive.</summary>
    internal static string NormalizeSerial(string hex)
    {
        var upper = hex.ToUpperInvariant();
        var start = 0;
        while (start + 2 < upper.Length && upper[start] == '0' && upper[start + 1] == '0')
        {
            start += 2;
        }

        return upper[start..];
    }

    private static IEnumerable<byte[]> PemBlocks(string text, string label)
    {
        var position = 0;
        while (PemEncoding.TryFind(text.AsSpan(position), out var fields))
        {
            if (text.AsSpan(position)[fields.Label].SequenceEqual(label))
            {
                yield return Convert.FromBase64String(text.Substring(position + fields.Base64Data.Start.Value, fields.Base64Data.End.Value - fields.Base64Data.Start.Value));
            }

            position += fields.Location.End.Value;
        }
    }
}
