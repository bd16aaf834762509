using System.Net.Security;
using EtcdShield.Configuration;
using Grpc.Core;
using Grpc.Net.Client;

namespace EtcdShield.Relay;

/// <summary>
/// The one gRPC channel to the etcd members. <see cref="UpstreamDialer"/> opens its connections with pick_first
/// failover: the first member that accepts a connection is used, and when it goes away the next one takes over.
/// The dialer, not gRPC's own balancer, picks the member because gRPC's balancer dials TCP only and refuses a
/// handler with a connect callback; members may be unix sockets, and TLS is negotiated by the dialer with each
/// member's host name, so the channel itself speaks HTTP/2 over the stream it is given.
/// </summary>
internal sealed class UpstreamChannel : IDisposable
{
    private readonly GrpcChannel _channel;

    public UpstreamChannel(ShieldOptions options, ILoggerFactory loggerFactory)
    {
        var dialer = new UpstreamDialer(options, loggerFactory.CreateLogger<UpstreamDialer>());
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            // The dialer bounds each member's attempt; the handler must not cut the walk through the members short.
            ConnectTimeout = Timeout.InfiniteTimeSpan,
            ConnectCallback = (_, cancellationToken) => dialer.ConnectAnyAsync(SslApplicationProtocol.Http2, cancellationToken),
        };

        _channel = GrpcChannel.ForAddress("http://etcd", new GrpcChannelOptions
        {
            HttpHandler = handler,
            // TLS, when the members use it, is already on the stream the dialer returns.
            Credentials = ChannelCredentials.Insecure,
            // etcd answers ranges of any size (clientv3 allows up to 2 GiB); never cut a response short.
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
            LoggerFactory = loggerFactory,
            DisposeHttpClient = true,
        });
    }

    public CallInvoker Invoker => _channel.CreateCallInvoker();

    public void Dispose() => _channel.Dispose();
}
