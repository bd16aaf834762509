using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.Tls;

/// <summary>
/// The names a client certificate carries that an allowlist or policy can match on.
/// Read once per connection, after its chain was found valid; the certificate itself stays with the TLS layer.
/// </summary>
internal sealed record ClientIdentity(
    string? CommonName,
    IReadOnlyList<string> OrganizationalUnits,
    IReadOnlyList<string> DnsNames,
    IReadOnlyList<string> Uris,
    string Sha256Fingerprint)
{
    private const string SubjectAltNameOid = "2.5.29.17";
    private const string CommonNameOid = "2.5.4.3";
    private const string OrganizationalUnitOid = "2.5.4.11";

    /// <summary>A client whose certificate the proxy never saw: it matches no identity, so it may do nothing.</summary>
    public static ClientIdentity Unknown { get; } = new(null, [], [], [], new string('0', 64));

    /// <summary>
    /// Why the certificate's names cannot be read one way only (two CNs, a multi-valued RDN, a malformed name);
    /// null when they can. An identity with a refusal carries no names and matches no identity of any policy.
    /// </summary>
    public string? Refusal { get; init; }

    /// <summary>Never throws: a certificate whose names cannot be read unambiguously gives an identity with a <see cref="Refusal"/>.</summary>
    public static ClientIdentity FromCertificate(X509Certificate2 certificate)
    {
        var fingerprint = Convert.ToHexStringLower(certificate.GetCertHash(HashAlgorithmName.SHA256));
        var ous = new List<string>();
        var dns = new List<string>();
        var uris = new List<string>();
        try
        {
            var refusal = ReadSubject(certificate.SubjectName.RawData, ous, out var cn) ?? ReadSubjectAltNames(certificate, dns, uris);
            return refusal is null
                ? new ClientIdentity(cn, ous, dns, uris, fingerprint)
                : new ClientIdentity(null, [], [], [], fingerprint) { Refusal = refusal };
        }
        catch (AsnContentException e)
        {
            return new ClientIdentity(null, [], [], [], fingerprint) { Refusal = $"its names are not valid DER: {e.Message}" };
        }
    }

    /// <summary>A short, log-safe description: what an operator needs to recognise the client.</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        if (CommonName is not null)
        {
            parts.Add($"CN={CommonName}");
        }

        parts.AddRange(DnsNames.Select(d => $"DNS:{d}"));
        parts.AddRange(Uris.Select(u => $"URI:{u}"));
        parts.Add($"sha256:{Sha256Fingerprint[..16]}");
        return string.Join(' ', parts);
    }

    /// <summary>
    /// The CN and the OUs, or why they are ambiguous. Parsers disagree about which of two CNs counts and how to
    /// split a multi-valued RDN (<c>CN=bob+OU=ops</c>), so neither is given a meaning: the subject is refused.
    /// OUs may repeat (each is one value of a set); each is taken whole.
    /// </summary>
    private static string? ReadSubject(byte[] der, List<string> ous, out string? commonName)
    {
        commonName = null;
        var reader = new AsnReader(der, AsnEncodingRules.DER);
        var rdns = reader.ReadSequence();
        reader.ThrowIfNotEmpty();
        while (rdns.HasData)
        {
            var rdn = rdns.ReadSetOf();
            var attribute = rdn.ReadSequence();
            if (rdn.HasData)
            {
                return "its subject has a multi-valued RDN";
            }

            var type = attribute.ReadObjectIdentifier();
            if (type is not (CommonNameOid or OrganizationalUnitOid))
            {
                continue;
            }

            if (ReadDirectoryString(attribute) is not { } value)
            {
                return $"its subject's {(type == CommonNameOid ? "CN" : "OU")} is not a string the proxy reads";
            }

            attribute.ThrowIfNotEmpty();

            if (type == OrganizationalUnitOid)
            {
                ous.Add(value);
            }
            else if (commonName is not null)
            {
                return "its subject has more than one CN";
            }
            else
            {
                commonName = value;
            }
        }

        if (commonName?.Length == 0)
        {
            commonName = null;
        }

        return null;
    }

    private static string? ReadDirectoryString(AsnReader attribute)
    {
        var tag = attribute.PeekTag();
        if (tag.TagClass != TagClass.Universal)
        {
            return null;
        }

        return (UniversalTagNumber)tag.TagValue switch
        {
            UniversalTagNumber.UTF8String or UniversalTagNumber.PrintableString or UniversalTagNumber.IA5String
                or UniversalTagNumber.T61String or UniversalTagNumber.BMPString
                => attribute.ReadCharacterString((UniversalTagNumber)tag.TagValue),
            _ => null,
        };
    }

    // X509SubjectAlternativeNameExtension has no URI accessor, so the SAN sequence is read directly.
    private static string? ReadSubjectAltNames(X509Certificate2 certificate, List<string> dns, List<string> uris)
    {
        var seen = false;
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value != SubjectAltNameOid)
            {
                continue;
            }

            if (seen)
            {
                return "it has more than one subjectAltName extension";
            }

            seen = true;
            var reader = new AsnReader(extension.RawData, AsnEncodingRules.DER);
            var names = reader.ReadSequence();
            reader.ThrowIfNotEmpty();
            while (names.HasData)
            {
                var tag = names.PeekTag();
                if (tag.TagClass == TagClass.ContextSpecific && tag.TagValue == 2)
                {
                    dns.Add(names.ReadCharacterString(UniversalTagNumber.IA5String, new Asn1Tag(TagClass.ContextSpecific, 2)));
                }
                else if (tag.TagClass == TagClass.ContextSpecific && tag.TagValue == 6)
                {
                    uris.Add(names.ReadCharacterString(UniversalTagNumber.IA5String, new Asn1Tag(TagClass.ContextSpecific, 6)));
                }
                else
                {
                    names.ReadEncodedValue();
                }
            }
        }

        return null;
    }
}
