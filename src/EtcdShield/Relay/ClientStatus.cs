using System.Net.Sockets;
using System.Security.Authentication;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// What the client hears when a call fails: etcd's own status and message unchanged (clientv3 rebuilds its typed
/// errors from the exact text), and for the proxy's own troubles a status that says what the client can do about
/// them, with the detail left to the proxy's log.
/// </summary>
internal static partial class ClientStatus
{
    /// <param name="stopping">The proxy is shutting down.</param>
    /// <param name="clientGone">The client cancelled the call, dropped it, or its deadline passed.</param>
    public static RpcException For(Exception e, string method, bool stopping, bool clientGone, ILogger logger)
    {
        switch (e)
        {
            // Ended because the proxy is stopping while the client still waits: tell it to go elsewhere.
            case RpcException { StatusCode: StatusCode.Cancelled } or OperationCanceledException or IOException
                when stopping && !clientGone:
                return new RpcException(new Status(StatusCode.Unavailable, "etcdshield: shutting down"));
            // The upstream channel could not reach etcd or lost it (connection refused or dropped, a TLS handshake
            // refused either way). Grpc.Net.Client reports that as UNAVAILABLE or INTERNAL with .NET exception text;
            // the operator needs the reason, the client only that etcd is out of reach, which it may retry.
            case RpcException { StatusCode: StatusCode.Unavailable or StatusCode.Internal, Status.DebugException: HttpRequestException or IOException or AuthenticationException or SocketException } transport
                when !clientGone:
                Log.UpstreamUnreachable(logger, method, transport.Status.StatusCode, transport.Status.DebugException);
                return new RpcException(new Status(StatusCode.Unavailable, "etcdshield: etcd is unreachable"));
            case RpcException rpc:
                return rpc;
            // The client has gone: whatever failed after that, nobody is listening for the answer, and nothing went
            // wrong in the proxy.
            case OperationCanceledException or IOException or InvalidOperationException when clientGone:
                return new RpcException(new Status(StatusCode.Cancelled, "context canceled"));
            // Kestrel fails reads and writes of a stream the client reset, or of a connection it dropped, before it
            // cancels the call's token. The upstream channel reports etcd's troubles as RpcExceptions, so a bare
            // IOException is the client leaving; as an INTERNAL it would let any client fill the error log.
            case IOException:
                return new RpcException(new Status(StatusCode.Cancelled, "context canceled"));
            default:
                Log.UnexpectedFailure(logger, method, e);
                return new RpcException(new Status(StatusCode.Internal, "etcdshield: internal error"));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.UnexpectedFailure, EventName = nameof(EventIds.UnexpectedFailure), Level = LogLevel.Error, Message = "Unexpected failure relaying {Method}")]
        public static partial void UnexpectedFailure(ILogger logger, string method, Exception exception);

        [LoggerMessage(EventId = EventIds.UpstreamUnreachable, EventName = nameof(EventIds.UpstreamUnreachable), Level = LogLevel.Warning, Message = "etcd is unreachable: {Method} failed with {Code} on the connection to etcd; the client is told UNAVAILABLE")]
        public static partial void UpstreamUnreachable(ILogger logger, string method, StatusCode code, Exception exception);
    }
}
