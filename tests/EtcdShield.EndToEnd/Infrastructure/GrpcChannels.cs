using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// gRPC channels for tests that speak the etcd v3 API themselves (through the generated clients of
/// EtcdShield.Protocol): to the proxy over mutual TLS, and to etcd directly over plain HTTP, e.g. to read
/// or plant the raw bytes etcd stores. Each channel owns its handler; dispose the channel when done.
/// </summary>
internal static class GrpcChannels
{
    /// <summary>A channel to the proxy presenting <paramref name="client"/> (the default allowed client when null)
    /// and trusting only <paramref name="pki"/>'s CA for the proxy's certificate.</summary>
    public static GrpcChannel ToProxy(ShieldServer shield, TestPki pki, CertificatePaths? client = null)
    {
        var certificate = (client ?? ShieldServer.DefaultClient(pki)).LoadWithPrivateKey();
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.Add(X509Certificate2.CreateFromPem(File.ReadAllText(pki.CaFile)));
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = [certificate],
                CertificateChainPolicy = policy,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            },
            EnableMultipleHttp2Connections = true,
        };
        return GrpcChannel.ForAddress(shield.ClientUrl, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
        });
    }

    /// <summary>A plain-HTTP channel straight to an etcd member, bypassing the proxy.</summary>
    public static GrpcChannel ToEtcd(EtcdProcess etcd)
    {
        if (!etcd.ClientUrl.StartsWith("http://", StringComparison.Ordinal))
        {
            throw new ArgumentException($"{etcd} serves TLS; this factory only opens plain channels to etcd.", nameof(etcd));
        }

        return GrpcChannel.ForAddress(etcd.ClientUrl, new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Insecure,
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
        });
    }
}
