using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>gRPC channels to the proxy that present a client certificate and trust only the test CA.</summary>
internal static class ProxyChannels
{
    public static GrpcChannel Create(string url, TestPki pki, CertificatePaths client)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.ClientCertificates = [client.LoadWithPrivateKey()];
        var trust = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        trust.CustomTrustStore.Add(X509CertificateLoader.LoadCertificateFromFile(pki.CaFile));
        handler.SslOptions.CertificateChainPolicy = trust;
        return GrpcChannel.ForAddress(url, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
    }
}
