namespace EtcdShield.Tls;

/// <summary>
/// The --allow-cn/--allow-dns/--allow-uri allowlist: a client is admitted when any one entry matches.
/// URI entries may use '*' for one path segment and a trailing '/**' for any rest, as SPIFFE IDs need.
/// </summary>
internal sealed class ClientAllowList
{
    private readonly HashSet<string> _commonNames;
    private readonly HashSet<string> _dnsNames;
    private readonly List<string> _uriPatterns;

    public ClientAllowList(IEnumerable<string> commonNames, IEnumerable<string> dnsNames, IEnumerable<string> uriPatterns)
    {
        _commonNames = new HashSet<string>(commonNames, StringComparer.Ordinal);
        // DNS names compare case-insensitively, as DNS does.
        _dnsNames = new HashSet<string>(dnsNames, StringComparer.OrdinalIgnoreCase);
        _uriPatterns = uriPatterns.ToList();
    }

    public bool IsEmpty => _commonNames.Count == 0 && _dnsNames.Count == 0 && _uriPatterns.Count == 0;

    public bool Admits(ClientIdentity identity) =>
        (identity.CommonName is { } cn && _commonNames.Contains(cn)) ||
        identity.DnsNames.Any(_dnsNames.Contains) ||
        identity.Uris.Any(uri => _uriPatterns.Any(pattern => UriPatternMatches(pattern, uri)));

    internal static bool UriPatternMatches(string pattern, string uri)
    {
        if (!pattern.Contains('*', StringComparison.Ordinal))
        {
            return string.Equals(pattern, uri, StringComparison.Ordinal);
        }

        var patternSegments = pattern.Split('/');
        var uriSegments = uri.Split('/');
        for (var i = 0; i < patternSegments.Length; i++)
        {
            if (patternSegments[i] == "**" && i == patternSegments.Length - 1)
            {
                // '/**' needs at least one more segment, so "spiffe://td/ns/**" does not admit "spiffe://td/ns".
                return uriSegments.Length > i && uriSegments.Skip(i).All(s => s.Length > 0);
            }

            if (i >= uriSegments.Length)
            {
                return false;
            }

            if (patternSegments[i] == "*" ? uriSegments[i].Length == 0 : !string.Equals(patternSegments[i], uriSegments[i], StringComparison.Ordinal))
            {
                return false;
            }
        }

        return patternSegments.Length == uriSegments.Length;
    }
}
