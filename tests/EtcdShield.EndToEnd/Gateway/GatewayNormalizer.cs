using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace EtcdShield.EndToEnd.Gateway;

/// <summary>
/// Replaces, in one run's raw JSON answers, only what legitimately differs between two fresh etcd servers: the
/// header's cluster_id, member_id and raft_term, the member status's dbSize, dbSizeInUse, version and leader, lease
/// IDs (numbered by the order the run was granted them, also in the keys Lock and Campaign make of them) and a
/// lease's remaining TTL (a clock reading, kept only as "between 1 and the granted TTL"). Everything else, field
/// order, quoting and escaping included, stays as written.
/// </summary>
internal sealed partial class GatewayNormalizer
{
    private readonly Dictionary<string, int> _leases = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _leasesInHex = new(StringComparer.Ordinal);

    /// <summary>Remembers a lease ID the run was granted; it becomes <c>&lt;lease N&gt;</c> in every answer.</summary>
    public int LeaseGranted(string id)
    {
        if (!_leases.TryGetValue(id, out var ordinal))
        {
            ordinal = _leases.Count;
            _leases.Add(id, ordinal);
            _leasesInHex.Add(long.Parse(id, CultureInfo.InvariantCulture).ToString("x", CultureInfo.InvariantCulture), ordinal);
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
        document = LeaseKey().Replace(document, m => $"\"{m.Groups["name"].Value}\":\"{WithoutLeaseHex(m.Groups["key"].Value)}\"");
        return LeaseId().Replace(document, m =>
            _leases.TryGetValue(m.Groups["id"].Value, out var ordinal) ? $"\"{m.Groups["name"].Value}\":\"<lease {ordinal}>\"" : m.Value);
    }

    /// <summary>A key Lock or Campaign made (<c>name/</c> and the lease in hex), with the lease numbered: base64 of <c>name/&lt;lease N&gt;</c>.</summary>
    private string WithoutLeaseHex(string base64)
    {
        var key = Encoding.UTF8.GetString(Convert.FromBase64String(base64));
        var slash = key.LastIndexOf('/');
        return slash >= 0 && _leasesInHex.TryGetValue(key[(slash + 1)..], out var ordinal)
            ? Convert.ToBase64String(Encoding.UTF8.GetBytes($"{key[..(slash + 1)]}<lease {ordinal}>"))
            : base64;
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

    [GeneratedRegex("\"(?<name>key)\":\"(?<key>(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)\"")]
    private static partial Regex LeaseKey();

    [GeneratedRegex("\"(?<name>ID|lease)\":\"(?<id>[0-9]+)\"")]
    private static partial Regex LeaseId();
}
