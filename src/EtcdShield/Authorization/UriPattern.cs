namespace EtcdShield.Authorization;

/// <summary>
/// URI SAN patterns as SPIFFE deployments need them: '*' stands for exactly one non-empty path segment, and a
/// trailing '/**' for one or more. Anything else compares exactly.
/// </summary>
internal static class UriPattern
{
    public static bool Matches(string pattern, string uri)
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
