using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.EndToEnd.Infrastructure;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>gRPC channels and HTTP clients to the proxy that present a client certificate and trust only the test CA.</summary>
internal static class GrpcClients
{
    public static GrpcChannel Channel(string url, TestPki pki, CertificatePaths? client = null) =>
        GrpcChannel.ForAddress(url, new GrpcChannelOptions
        {
            HttpHandler = Handler(pki, client ?? ShieldServer.DefaultClient(pki)),
            DisposeHttpClient = true,
        });

    public static HttpClient Http(TestPki pki, CertificatePaths? client = null) =>
        new(Handler(pki, client ?? ShieldServer.DefaultClient(pki)), disposeHandler: true);

    internal static SocketsHttpHandler Handler(TestPki pki, CertificatePaths client)
    {
        var trust = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        trust.CustomTrustStore.Add(X509CertificateLoader.LoadCertificateFromFile(pki.CaFile));

        // Re-imported through PKCS#12 so that SslStream can use the PEM key on Linux.
        using var pem = client.LoadWithPrivateKey();
        var certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        return new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                CertificateChainPolicy = trust,
                ClientCertificates = [certificate],
            },
            EnableMultipleHttp2Connections = true,
        };
    }
}
