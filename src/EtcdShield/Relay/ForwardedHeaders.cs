using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// Which request metadata travels on to etcd. Application metadata does (clientv3's <c>hasleader</c>,
/// auth <c>token</c>, <c>client-api-version</c>, anything custom); transport headers that the upstream
/// channel sets itself do not, nor any <c>grpc-</c> key: gRPC reserves them for itself, grpc-go drops them, and
/// Grpc.Net.Client obeys some (<c>grpc-internal-encoding-request</c> picks the codec of the request it sends), so a
/// client naming one would steer the proxy's own call to etcd.
/// </summary>
internal static class ForwardedHeaders
{
    private static readonly HashSet<string> TransportHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "te", "content-type", "user-agent", "host", "accept-encoding", "content-length",
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
    };

    public static Metadata? From(Metadata requestHeaders)
    {
        Metadata? forwarded = null;
        foreach (var entry in requestHeaders)
        {
            if (entry.Key.StartsWith(':') || entry.Key.StartsWith("grpc-", StringComparison.OrdinalIgnoreCase) || TransportHeaders.Contains(entry.Key))
            {
                continue;
            }

            forwarded ??= [];
            forwarded.Add(entry);
        }

        return forwarded;
    }
}
