using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.Tls;
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
        var https = options.UpstreamEndpoints[0].Scheme == Uri.UriSchemeHttps;
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };
        if (https)
        {
            handler.SslOptions = UpstreamTls(options);
        }

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

    private static SslClientAuthenticationOptions UpstreamTls(ShieldOptions options)
    {
        var tls = new SslClientAuthenticationOptions
        {
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        };
        if (options.UpstreamTrustedCaFile is { } caFile)
        {
            // Trust exactly the configured CA for etcd's certificate; the host name is still checked.
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(ServerTls.LoadAuthorities("--upstream-trusted-ca-file", caFile));
            tls.CertificateChainPolicy = policy;
        }

        if (options.UpstreamCertFile is { } certFile && options.UpstreamKeyFile is { } keyFile)
        {
            var certificate = ServerTls.LoadServerCertificate(certFile, keyFile);
            tls.ClientCertificates = new X509CertificateCollection { certificate.Leaf };
        }

        return tls;
    }
}
