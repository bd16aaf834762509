using EtcdShield.Tls;

namespace EtcdShield.Authorization;

/// <summary>
/// Which client certificates a policy identity stands for. Every kind of name given must match (a CN and an OU
/// both given means both); within one kind, any of the listed values matches. A match with no names is refused
/// when the policy is loaded, so that an identity can never match every certificate by accident. A certificate
/// whose names are ambiguous (<see cref="ClientIdentity.Refusal"/>) matches nothing, not even by fingerprint.
/// </summary>
internal sealed class IdentityMatch
{
    public IdentityMatch(
        IReadOnlyList<string> commonNames,
        IReadOnlyList<string> dnsNames,
        IReadOnlyList<string> uriPatterns,
        IReadOnlyList<string> organizationalUnits,
        IReadOnlyList<string> sha256Fingerprints)
    {
        CommonNames = commonNames;
        DnsNames = dnsNames;
        UriPatterns = uriPatterns;
        OrganizationalUnits = organizationalUnits;
        Sha256Fingerprints = sha256Fingerprints.Select(NormalizeFingerprint).ToList();
    }

    public IReadOnlyList<string> CommonNames { get; }

    public IReadOnlyList<string> DnsNames { get; }

    public IReadOnlyList<string> UriPatterns { get; }

    public IReadOnlyList<string> OrganizationalUnits { get; }

    public IReadOnlyList<string> Sha256Fingerprints { get; }

    public bool IsEmpty =>
        CommonNames.Count + DnsNames.Count + UriPatterns.Count + OrganizationalUnits.Count + Sha256Fingerprints.Count == 0;

    public bool Matches(ClientIdentity identity) =>
        !IsEmpty &&
        identity.Refusal is null &&
        (CommonNames.Count == 0 || (identity.CommonName is { } cn && CommonNames.Contains(cn, StringComparer.Ordinal))) &&
        // DNS names compare case-insensitively, as DNS does.
        (DnsNames.Count == 0 || identity.DnsNames.Any(d => DnsNames.Contains(d, StringComparer.OrdinalIgnoreCase))) &&
        (UriPatterns.Count == 0 || identity.Uris.Any(u => UriPatterns.Any(p => UriPattern.Matches(p, u)))) &&
        // A certificate's OUs are a set: one of them equal to a listed OU, whole and exact, is enough.
        (OrganizationalUnits.Count == 0 || identity.OrganizationalUnits.Any(ou => OrganizationalUnits.Contains(ou, StringComparer.Ordinal))) &&
        (Sha256Fingerprints.Count == 0 || Sha256Fingerprints.Contains(identity.Sha256Fingerprint, StringComparer.Ordinal));

    /// <summary>Accepts the forms tools print: lower or upper case hex, with or without colons.</summary>
    internal static string NormalizeFingerprint(string fingerprint) =>
        fingerprint.Replace(":", "", StringComparison.Ordinal).Trim().ToLowerInvariant();
}
