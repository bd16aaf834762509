using System.Globalization;
using System.Text.RegularExpressions;

namespace EtcdShield.EndToEnd.Gateway;

/// <summary>
/// Replaces, in one run's raw JSON answers, only what legitimately differs between two fresh etcd servers: the
/// header's cluster_id, member_id and raft_term, the member status's dbSize, dbSizeInUse, version and leader, lease
/// IDs (numbered by the order the run was granted them) and a lease's remaining TTL (a clock reading, kept only as
/// "between 1 and the granted TTL"). Everything else, field order, quoting and escaping included, stays as written.
/// </summary>
internal sealed partial class GatewayNormalizer
{
    private readonly Dictionary<string, int> _leases = new(StringComparer.Ordinal);

    /// <summary>Remembers a lease ID the run was granted; it becomes <c>&lt;lease N&gt;</c> in every answer.</summary>
    public int LeaseGranted(string id)
    {
        if (!_leases.TryGetValue(id, out var ordinal))
        {
            ordinal = _leases.Count;
            _leases.Add(id, ordinal);
        }

        return ordinal;
    }

    public string Normalize(string document)
    {
        document = HeaderIdentity().Replace(document, m => $"\"{m.Groups["name"].Value}\":\"<{m.Groups["name"].Value}>\"");
        document = StatusField().Replace(document, m => $"\"{m.Groups["name"].Value}\":\"<{m.Groups["name"].Value}>\"");
        document = RemainingTtl().Replace(document, m =>
        {
            var remaining = long.Parse(m.Groups["ttl"].Value, CultureInfo.InvariantCulture);
            var granted = long.Parse(m.Groups["granted"].Value, CultureInfo.InvariantCulture);
            return remaining >= 1 && remaining <= granted ? $"\"TTL\":\"<remaining>\",\"grantedTTL\":\"{m.Groups["granted"].Value}\"" : m.Value;
        });
        return LeaseId().Replace(document, m =>
            _leases.TryGetValue(m.Groups["id"].Value, out var ordinal) ? $"\"{m.Groups["name"].Value}\":\"<lease {ordinal}>\"" : m.Value);
    }

    /// <summary>The lease IDs of <paramref name="document"/> as the run knows them, e.g. in a grant answer.</summary>
    public static string? GrantedId(string document) => LeaseId().Match(document) is { Success: true } m && m.Groups["name"].Value == "ID" ? m.Groups["id"].Value : null;

    [GeneratedRegex("\"(?<name>cluster_id|member_id|raft_term)\":\"[0-9]+\"")]
    private static partial Regex HeaderIdentity();

    // "version" only as the status's dotted server version; a key's version is a plain integer.
    [GeneratedRegex("\"(?<name>dbSize|dbSizeInUse|leader)\":\"[0-9]+\"|\"(?<name>version)\":\"[0-9]+\\.[0-9]+\\.[0-9A-Za-z.+-]+\"")]
    private static partial Regex StatusField();

    [GeneratedRegex("\"TTL\":\"(?<ttl>-?[0-9]+)\",\"grantedTTL\":\"(?<granted>[0-9]+)\"")]
    private static partial Regex RemainingTtl();

    [GeneratedRegex("\"(?<name>ID|lease)\":\"(?<id>[0-9]+)\"")]
    private static partial Regex LeaseId();
}
