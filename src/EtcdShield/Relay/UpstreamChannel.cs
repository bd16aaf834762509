using EtcdShield.Configuration;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;

namespace EtcdShield.Relay;

/// <summary>
/// The one gRPC channel to the etcd members. pick_first over the configured endpoints gives failover:
/// the first member that accepts a connection is used, and when it goes away the next one takes over.
/// </summary>
internal sealed class UpstreamChannel : IDisposable
{
    private readonly GrpcChannel _channel;

    public UpstreamChannel(ShieldOptions options, ILoggerFactory loggerFactory)
    {
        var https = UpstreamTls.Enabled(options);
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };
        UpstreamTls.ApplyTo(handler, options);

        var services = new ServiceCollection();
        services.AddSingleton<ResolverFactory>(new StaticResolverFactory(_ =>
            options.UpstreamEndpoints.Select(u => new BalancerAddress(u.Host, u.Port)).ToArray()));

        _channel = GrpcChannel.ForAddress("static:///etcd", new GrpcChannelOptions
        {
            HttpHandler = handler,
            Credentials = https ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure,
            ServiceProvider = services.BuildServiceProvider(),
            ServiceConfig = new ServiceConfig { LoadBalancingConfigs = { new PickFirstConfig() } },
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
