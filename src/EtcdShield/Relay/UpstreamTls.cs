using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.Tls;

namespace EtcdShield.Relay;

/// <summary>
/// How the proxy speaks TLS to etcd: TLS 1.2 or 1.3, etcd's certificate checked against exactly
/// --upstream-trusted-ca-file (host name included), and the proxy's own --upstream-cert-file. The one definition
/// for every connection to etcd (the gRPC channel, the forwarded plain HTTP endpoints), so they trust the same.
/// </summary>
internal static class UpstreamTls
{
    public static bool Enabled(ShieldOptions options) => UpstreamUrls.UsesTls(options.UpstreamEndpoints[0]);

    /// <summary>
    /// The TLS options every connection to etcd starts from when the members are https or unixs, null when they
    /// are http or unix; <see cref="UpstreamDialer"/> adds the member's host name and the application protocol.
    /// </summary>
    public static SslClientAuthenticationOptions? ClientOptions(ShieldOptions options)
    {
        if (!Enabled(options))
        {
            return null;
        }

        var tls = new SslClientAuthenticationOptions
        {
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        };
        if (options.UpstreamTrustedCaFile is { } caFile)
        {
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
