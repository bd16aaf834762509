using System.Globalization;
using System.Numerics;
using EtcdShield.Configuration;

namespace EtcdShield.Tls;

/// <summary>
/// The newest CRL each CA has had in force since the process started: its CRL number and thisUpdate. A CRL file
/// that goes back to an older CRL, genuine and signed as it is, would un-revoke what was revoked since, so a
/// reload with one fails and the last good CRL stays (RFC 5280 5.2.3: CRL numbers only increase). Kept in memory
/// only: after a restart the first CRL read sets the mark again. A file that leaves out the CRL of a CA that had one
/// un-revokes just as well (a CA without a CRL is not checked), so that fails too, even when the CA left the
/// bundle with it: its certificates may still be presented as intermediates under a CA that stays.
/// </summary>
internal sealed class RevocationHistory
{
    private readonly Dictionary<string, Mark> _newest = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    /// <summary>
    /// Records <paramref name="lists"/> (at most one per CA) as now in force, or throws, recording nothing, if any
    /// of them is older than what its CA had in force before, or a CA that had a CRL in force has none among them.
    /// </summary>
    public void Advance(IEnumerable<RevocationList> lists, string source)
    {
        lock (_gate)
        {
            var marks = new List<(string Authority, Mark Mark)>();
            foreach (var list in lists)
            {
                if (_newest.TryGetValue(list.Authority, out var mark) && WhyOlder(list, mark) is { } reason)
                {
                    throw new ConfigurationException($"--client-crl-file {source}: the CRL of '{list.Issuer.Name}' {reason}; an older CRL would un-revoke certificates, so the one in force stays");
                }

                marks.Add((list.Authority, new Mark(list.Issuer.Name, list.Number, list.ThisUpdate, list.ContentHash)));
            }

            var present = marks.Select(m => m.Authority).ToHashSet(StringComparer.Ordinal);
            foreach (var (authority, mark) in _newest)
            {
                if (!present.Contains(authority))
                {
                    throw new ConfigurationException($"--client-crl-file {source}: the CRL of '{mark.Issuer}' is no longer in the file; leaving it out would un-revoke the certificates it revokes, so the one in force stays (restart the proxy to stop checking that CA)");
                }
            }

            foreach (var (authority, mark) in marks)
            {
                _newest[authority] = mark;
            }
        }
    }

    private static string? WhyOlder(RevocationList list, Mark mark)
    {
        if (mark.Number is { } inForce)
        {
            if (list.Number is not { } number)
            {
                return $"has no CRL number, but CRL number {inForce} of that CA is in force";
            }

            if (number < inForce)
            {
                return $"is CRL number {number}, older than CRL number {inForce} in force";
            }

            if (number == inForce && list.ContentHash != mark.ContentHash)
            {
                return $"reuses CRL number {number} with different contents";
            }
        }

        return list.ThisUpdate < mark.ThisUpdate
            ? $"was issued at {Time(list.ThisUpdate)}, before the CRL in force ({Time(mark.ThisUpdate)})"
            : null;
    }

    private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    private sealed record Mark(string Issuer, BigInteger? Number, DateTimeOffset ThisUpdate, string ContentHash);
}
