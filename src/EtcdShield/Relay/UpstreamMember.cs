using System.Globalization;
using EtcdShield.Configuration;

namespace EtcdShield.Relay;

/// <summary>
/// One etcd member as the proxy dials it: over TCP to <see cref="Host"/>:<see cref="Port"/>, or to the unix socket
/// <see cref="SocketPath"/>; with TLS, etcd's certificate must name <see cref="TlsHostName"/>.
/// <see cref="Authority"/> is the HTTP authority the proxy's HTTP clients use for this member: the member's own
/// host and port for TCP (what etcd saw before sockets existed), and for a socket a made-up one that no other
/// member shares, because the connection pools are keyed by authority and the dialer finds the member by it.
/// </summary>
internal sealed record UpstreamMember(Uri Endpoint, string Host, int Port, string? SocketPath, string TlsHostName)
{
    public string Authority => Host.Contains(':', StringComparison.Ordinal)
        ? string.Create(CultureInfo.InvariantCulture, $"[{Host}]:{Port}")
        : string.Create(CultureInfo.InvariantCulture, $"{Host}:{Port}");

    /// <summary>The members of <paramref name="endpoints"/>, in order, each with an authority of its own.</summary>
    public static IReadOnlyList<UpstreamMember> From(IReadOnlyList<Uri> endpoints)
    {
        var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var endpoint in endpoints.Where(e => !UpstreamUrls.IsUnixSocket(e)))
        {
            taken.Add(Key(Bare(endpoint.Host), endpoint.Port));
        }

        var members = new List<UpstreamMember>(endpoints.Count);
        foreach (var endpoint in endpoints)
        {
            if (UpstreamUrls.SocketPath(endpoint) is not { } path)
            {
                members.Add(new UpstreamMember(endpoint, Bare(endpoint.Host), endpoint.Port, null, endpoint.Host));
                continue;
            }

            // etcd's unix://NAME:PORT keeps its name and port; an absolute path is "localhost", as gRPC names a socket.
            var host = endpoint.Host.Length > 0 ? endpoint.Host : "localhost";
            var port = endpoint.Port > 0 ? endpoint.Port : 1;
            while (!taken.Add(Key(host, port)))
            {
                port = port % 65535 + 1;
            }

            members.Add(new UpstreamMember(endpoint, host, port, path, UpstreamUrls.TlsHostName(endpoint)));
        }

        return members;
    }

    /// <summary>The member whose <see cref="Authority"/> names <paramref name="host"/> and <paramref name="port"/>; null if none.</summary>
    public static UpstreamMember? Find(IReadOnlyList<UpstreamMember> members, string host, int port)
    {
        var key = Key(Bare(host), port);
        return members.FirstOrDefault(m => string.Equals(Key(m.Host, m.Port), key, StringComparison.OrdinalIgnoreCase));
    }

    // An IPv6 literal is written in brackets in a URI's host and without them in a DnsEndPoint.
    private static string Bare(string host) => host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;

    private static string Key(string host, int port) => string.Create(CultureInfo.InvariantCulture, $"{host}:{port}");
}
