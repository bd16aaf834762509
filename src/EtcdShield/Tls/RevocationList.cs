using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;

namespace EtcdShield.Tls;

/// <summary>
/// One certificate revocation list from <c>--client-crl-file</c>: which CA revokes and which serial numbers. Its
/// signature is checked against the trusted CAs when it is loaded, so a CRL file someone else slipped in cannot
/// un-revoke anything or lock clients out by name alone. Only complete CRLs whose every critical extension the
/// proxy implements are accepted (RFC 5280 5.2, 5.3): delta, partitioned and indirect CRLs are refused.
/// </summary>
internal sealed class RevocationList
{
    private const string AuthorityKeyIdentifierOid = "2.5.29.35";
    private const string CrlNumberOid = "2.5.29.20";
    private const string DeltaCrlIndicatorOid = "2.5.29.27";
    private const string IssuingDistributionPointOid = "2.5.29.28";
    private const string ReasonCodeOid = "2.5.29.21";
    private const string InvalidityDateOid = "2.5.29.24";
    private const string CertificateIssuerOid = "2.5.29.29";

    private static readonly Asn1Tag CrlExtensionsTag = new(TagClass.ContextSpecific, 0, isConstructed: true);
    private static readonly Asn1Tag KeyIdentifierTag = new(TagClass.ContextSpecific, 0);

    private readonly HashSet<string> _revokedSerials;

    private RevocationList(X500DistinguishedName issuer, string authority, HashSet<string> revokedSerials, DateTimeOffset thisUpdate, DateTimeOffset? nextUpdate, BigInteger? number, string contentHash)
    {
        Issuer = issuer;
        Authority = authority;
        _revokedSerials = revokedSerials;
        ThisUpdate = thisUpdate;
        NextUpdate = nextUpdate;
        Number = number;
        ContentHash = contentHash;
    }

    public X500DistinguishedName Issuer { get; }

    /// <summary>The CA that signed it, as <see cref="CertificateId.IssuerKey"/> names it: its name and its key.</summary>
    public string Authority { get; }

    public DateTimeOffset ThisUpdate { get; }

    public DateTimeOffset? NextUpdate { get; }

    /// <summary>The cRLNumber extension; null when the CRL has none.</summary>
    public BigInteger? Number { get; }

    /// <summary>SHA-256 of the signed part: two CRLs with one number must be the same CRL.</summary>
    public string ContentHash { get; }

    /// <param name="serial">As <see cref="NormalizeSerial"/> gives it.</param>
    public bool Revokes(string serial) => _revokedSerials.Contains(serial);

    /// <summary>Whether this list supersedes <paramref name="other"/> of the same CA: a higher number, or a later thisUpdate.</summary>
    public bool IsNewerThan(RevocationList other)
    {
        var number = Number ?? BigInteger.MinusOne;
        var otherNumber = other.Number ?? BigInteger.MinusOne;
        return number != otherNumber ? number > otherNumber : ThisUpdate > other.ThisUpdate;
    }

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
            outer.ThrowIfNotEmpty();
            var tbsEncoded = certificateList.PeekEncodedValue();
            var tbs = certificateList.ReadSequence();
            var outerAlgorithm = certificateList.PeekEncodedValue();
            var algorithm = certificateList.ReadSequence().ReadObjectIdentifier();
            var signature = certificateList.ReadBitString(out _);
            certificateList.ThrowIfNotEmpty();

            if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
            {
                tbs.ReadInteger();
            }

            var innerAlgorithm = tbs.ReadEncodedValue();
            var issuer = new X500DistinguishedName(tbs.ReadEncodedValue().Span);
            string Refuse(string why) => $"--client-crl-file {source}: the CRL of '{issuer.Name}' {why}";

            // RFC 5280 5.1.1.2: otherwise the signed part may claim a different algorithm than the one verified.
            if (!innerAlgorithm.Span.SequenceEqual(outerAlgorithm.Span))
            {
                throw new ConfigurationException(Refuse("names a different signature algorithm inside (tbsCertList.signature) than outside (signatureAlgorithm)"));
            }

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
                    ReadTime(entry);
                    if (entry.HasData)
                    {
                        CheckEntryExtensions(entry.ReadSequence(), Refuse);
                    }

                    entry.ThrowIfNotEmpty();
                }
            }

            ReadOnlyMemory<byte>? authorityKeyId = null;
            BigInteger? number = null;
            if (tbs.HasData)
            {
                (authorityKeyId, number) = ReadCrlExtensions(tbs.ReadSequence(CrlExtensionsTag), Refuse);
            }

            tbs.ThrowIfNotEmpty();
            var signer = Signer(authorities, issuer, authorityKeyId, algorithm, tbsEncoded.Span, signature, Refuse);
            return new RevocationList(issuer, CertificateId.IssuerKey(signer), serials, thisUpdate, nextUpdate, number,
                Convert.ToHexStringLower(SHA256.HashData(tbsEncoded.Span)));
        }
        catch (AsnContentException e)
        {
            throw new ConfigurationException($"--client-crl-file {source}: not a DER or PEM certificate revocation list: {e.Message}", e);
        }
    }

    /// <summary>
    /// The trusted CA that signed the CRL. A renewed CA often keeps its predecessor's name, so every CA of that
    /// name is a candidate: the authority key identifier narrows them, the signature decides.
    /// </summary>
    private static X509Certificate2 Signer(
        X509Certificate2Collection authorities, X500DistinguishedName issuer, ReadOnlyMemory<byte>? authorityKeyId,
        string algorithm, ReadOnlySpan<byte> signed, byte[] signature, Func<string, string> refuse)
    {
        var named = false;
        X509Certificate2? withoutCrlSign = null;
        foreach (var candidate in authorities)
        {
            if (!candidate.SubjectName.RawData.AsSpan().SequenceEqual(issuer.RawData))
            {
                continue;
            }

            named = true;
            if (authorityKeyId is { } keyId && candidate.Extensions.OfType<X509SubjectKeyIdentifierExtension>().FirstOrDefault() is { } subjectKeyId
                && !subjectKeyId.SubjectKeyIdentifierBytes.Span.SequenceEqual(keyId.Span))
            {
                continue;
            }

            if (!SignatureHolds(candidate, algorithm, signed, signature))
            {
                continue;
            }

            if (candidate.Extensions.OfType<X509KeyUsageExtension>().FirstOrDefault() is { } usage && !usage.KeyUsages.HasFlag(X509KeyUsageFlags.CrlSign))
            {
                withoutCrlSign = candidate;
                continue;
            }

            return candidate;
        }

        throw new ConfigurationException(
            !named ? refuse("is not from a CA in --trusted-ca-file")
            : withoutCrlSign is not null ? refuse($"is signed by a CA whose keyUsage lacks cRLSign (serial {withoutCrlSign.SerialNumber}): it may not sign CRLs")
            : refuse("does not carry a valid signature of that CA"));
    }

    private static (ReadOnlyMemory<byte>? AuthorityKeyId, BigInteger? Number) ReadCrlExtensions(AsnReader tagged, Func<string, string> refuse)
    {
        var extensions = tagged.ReadSequence();
        tagged.ThrowIfNotEmpty();
        ReadOnlyMemory<byte>? authorityKeyId = null;
        BigInteger? number = null;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (extensions.HasData)
        {
            var (oid, critical, value) = ReadExtension(extensions, seen, refuse);
            var reader = new AsnReader(value, AsnEncodingRules.DER);
            switch (oid)
            {
                case AuthorityKeyIdentifierOid:
                    var identifier = reader.ReadSequence();
                    if (identifier.HasData && identifier.PeekTag().HasSameClassAndValue(KeyIdentifierTag))
                    {
                        authorityKeyId = identifier.ReadOctetString(KeyIdentifierTag);
                    }

                    continue;
                case CrlNumberOid:
                    number = reader.ReadInteger();
                    reader.ThrowIfNotEmpty();
                    if (number < 0)
                    {
                        throw new ConfigurationException(refuse("has a negative CRL number"));
                    }

                    continue;
                case DeltaCrlIndicatorOid:
                    throw new ConfigurationException(refuse("is a delta CRL (deltaCRLIndicator): it lists only what changed since its base, and delta CRLs are not supported; give the complete CRL"));
                case IssuingDistributionPointOid:
                    throw new ConfigurationException(refuse("has an issuingDistributionPoint (a critical extension limiting what it covers): partitioned and indirect CRLs are not supported; give the complete CRL"));
                default:
                    // A non-critical one (freshestCRL, pointing to delta CRLs, among them) leaves the CRL complete.
                    if (critical)
                    {
                        throw new ConfigurationException(refuse($"has a critical extension {oid} the proxy does not implement"));
                    }

                    continue;
            }
        }

        return (authorityKeyId, number);
    }

    private static void CheckEntryExtensions(AsnReader extensions, Func<string, string> refuse)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (extensions.HasData)
        {
            var (oid, critical, _) = ReadExtension(extensions, seen, refuse);
            if (oid == CertificateIssuerOid)
            {
                throw new ConfigurationException(refuse("is an indirect CRL (an entry has a certificateIssuer): indirect CRLs are not supported"));
            }

            // A reason (a hold included) still revokes; only the fact of the entry counts.
            if (critical && oid is not (ReasonCodeOid or InvalidityDateOid))
            {
                throw new ConfigurationException(refuse($"has an entry with a critical extension {oid} the proxy does not implement"));
            }
        }
    }

    private static (string Oid, bool Critical, byte[] Value) ReadExtension(AsnReader extensions, HashSet<string> seen, Func<string, string> refuse)
    {
        var extension = extensions.ReadSequence();
        var oid = extension.ReadObjectIdentifier();
        var critical = extension.PeekTag().HasSameClassAndValue(Asn1Tag.Boolean) && extension.ReadBoolean();
        var value = extension.ReadOctetString();
        extension.ThrowIfNotEmpty();
        if (!seen.Add(oid))
        {
            throw new ConfigurationException(refuse($"has the extension {oid} twice"));
        }

        return (oid, critical, value);
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
