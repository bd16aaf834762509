using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.Tls;

/// <summary>
/// The names a client certificate carries that an allowlist or policy can match on.
/// Read once per connection; the certificate itself stays with the TLS layer.
/// </summary>
internal sealed record ClientIdentity(
    string? CommonName,
    IReadOnlyList<string> OrganizationalUnits,
    IReadOnlyList<string> DnsNames,
    IReadOnlyList<string> Uris,
    string Sha256Fingerprint)
{
    private const string SubjectAltNameOid = "2.5.29.17";

    /// <summary>A client whose certificate the proxy never saw: it matches no identity, so it may do nothing.</summary>
    public static ClientIdentity Unknown { get; } = new(null, [], [], [], new string('0', 64));

    public static ClientIdentity FromCertificate(X509Certificate2 certificate)
    {
        var cn = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        var ous = certificate.SubjectName.EnumerateRelativeDistinguishedNames()
            .Where(rdn => rdn.GetSingleElementType().Value == "2.5.4.11")
            .Select(rdn => rdn.GetSingleElementValue() ?? "")
            .ToList();

        var dns = new List<string>();
        var uris = new List<string>();
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value == SubjectAltNameOid)
            {
                ReadSubjectAltNames(extension.RawData, dns, uris);
            }
        }

        var fingerprint = Convert.ToHexStringLower(certificate.GetCertHash(HashAlgorithmName.SHA256));
        return new ClientIdentity(string.IsNullOrEmpty(cn) ? null : cn, ous, dns, uris, fingerprint);
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

    // X509SubjectAlternativeNameExtension has no URI accessor, so the SAN sequence is read directly.
    private static void ReadSubjectAltNames(byte[] der, List<string> dns, List<string> uris)
    {
        try
        {
            var reader = new AsnReader(der, AsnEncodingRules.DER);
            var names = reader.ReadSequence();
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
        catch (AsnContentException)
        {
            // A malformed SAN grants nothing: the identity simply carries no alternative names.
            dns.Clear();
            uris.Clear();
        }
    }
}
