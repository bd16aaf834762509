using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// Which request metadata travels on to etcd. Application metadata does (clientv3's <c>hasleader</c>,
/// auth <c>token</c>, <c>client-api-version</c>, anything custom); transport headers that the upstream
/// channel sets itself do not.
/// </summary>
internal static class ForwardedHeaders
{
    private static readonly HashSet<string> TransportHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "te", "content-type", "user-agent", "host", "accept-encoding", "content-length",
        "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "grpc-message-type",
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
    };

    public static Metadata? From(Metadata requestHeaders)
    {
        Metadata? forwarded = null;
        foreach (var entry in requestHeaders)
        {
            if (entry.Key.StartsWith(':') || TransportHeaders.Contains(entry.Key))
            {
                continue;
            }

            forwarded ??= [];
            forwarded.Add(entry);
        }

        return forwarded;
    }
}
