using System.Globalization;
using System.Text.RegularExpressions;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// Rewrites a layout's command lines, environment and paths for this machine: absolute paths under the layout's
/// directories move into a temporary directory, and the layout's addresses and ports to loopback addresses and free
/// ports, so a layout written for /etc/kubernetes and port 2379 runs here without touching either.
/// </summary>
internal sealed class HostMapping
{
    private readonly List<(string From, string To)> paths = [];
    private readonly Dictionary<string, string> endpoints = new(StringComparer.Ordinal);
    private Regex? pathPattern;

    /// <summary>Maps <paramref name="layoutPath"/> (a directory or a file) and everything below it.</summary>
    public HostMapping Path(string layoutPath, string hostPath)
    {
        paths.Add((layoutPath.TrimEnd('/'), hostPath.TrimEnd('/')));
        pathPattern = null;
        return this;
    }

    /// <summary>Maps <c>HOST:PORT</c> as it appears in URLs; a bare socket file name such as <c>localhost:2379</c> is left alone.</summary>
    public HostMapping Endpoint(string layoutHost, int layoutPort, string host, int port)
    {
        endpoints[$"{layoutHost}:{layoutPort.ToString(CultureInfo.InvariantCulture)}"] = $"{host}:{port.ToString(CultureInfo.InvariantCulture)}";
        return this;
    }

    /// <summary>The port a layout's <c>HOST:PORT</c> was mapped to.</summary>
    public int PortOf(string layoutHost, int layoutPort) =>
        int.Parse(endpoints[$"{layoutHost}:{layoutPort.ToString(CultureInfo.InvariantCulture)}"].Split(':')[^1], CultureInfo.InvariantCulture);

    /// <summary>The host path a layout path maps to.</summary>
    public string HostPath(string layoutPath)
    {
        var mapped = Map(layoutPath);
        return mapped == layoutPath ? throw new InvalidOperationException($"{layoutPath} is not under a mapped path") : mapped;
    }

    /// <summary>
    /// One pass over <paramref name="text"/>, so a mapped path (itself under /tmp) is never mapped again: paths
    /// after a start, '=', ',', ':' or "//" (a file URL), longest first; then endpoints, after "//".
    /// </summary>
    public string Map(string text)
    {
        pathPattern ??= new Regex(
            @"(?<=^|[=,:]|//)(?:" + string.Join('|', paths.Select(p => p.From).OrderByDescending(p => p.Length).Select(Regex.Escape)) + @")(?=/|$|,)",
            RegexOptions.CultureInvariant);
        var mapped = paths.Count == 0 ? text : pathPattern.Replace(text, m => paths.Single(p => p.From == m.Value).To);
        return Regex.Replace(mapped, @"(?<=//)[^/,:\s]+:\d+", m => endpoints.TryGetValue(m.Value, out var to)
            ? to
            : char.IsAsciiDigit(m.Value[0])
                ? throw new InvalidOperationException($"{m.Value} in '{text}' has no mapping: the test would bind the layout's own address")
                : m.Value, RegexOptions.CultureInvariant);
    }
}
