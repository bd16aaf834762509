using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.Reload;
using Microsoft.AspNetCore.Connections;

namespace EtcdShield.Tls;

/// <summary>
/// Builds the TLS settings for each client connection: our current certificate, TLS 1.2+ (or 1.3 only with
/// <c>--tls-min-version 1.3</c>), AEAD cipher suites only, and a mandatory client certificate checked by
/// <see cref="ClientCertificateValidator"/>.
/// </summary>
internal sealed class ServerTls
{
    // AEAD suites only: TLS 1.3's three, and the ECDHE + GCM/ChaCha20 suites of TLS 1.2.
    private static readonly TlsCipherSuite[] AeadSuites =
    [
        TlsCipherSuite.TLS_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];

    private readonly ReloadableFiles<ServerCertificate> _certificate;
    private readonly ClientCertificateValidator _validator;
    private readonly SslProtocols _protocols;
    private readonly CipherSuitesPolicy? _cipherSuites;

    public ServerTls(ShieldOptions options, ReloadableFiles<ServerCertificate> certificate, ClientCertificateValidator validator)
    {
        _certificate = certificate;
        _validator = validator;
        _protocols = options.TlsMinVersion == "1.3" ? SslProtocols.Tls13 : SslProtocols.Tls12 | SslProtocols.Tls13;
        _cipherSuites = OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() ? new CipherSuitesPolicy(AeadSuites) : null;
    }

    /// <summary>
    /// Called for every new connection, so a reloaded certificate is what the next client sees while open
    /// connections keep theirs. The connection's <see cref="AdmittedClient"/> is where the handshake leaves the
    /// client's identity for the requests that follow.
    /// </summary>
    public SslServerAuthenticationOptions ForConnection(ConnectionContext connection)
    {
        var peer = connection.RemoteEndPoint;
        var client = new AdmittedClient(peer);
        connection.Items[AdmittedClient.ItemKey] = client;
        return new SslServerAuthenticationOptions
        {
            ServerCertificateContext = _certificate.Current.Context,
            EnabledSslProtocols = _protocols,
            CipherSuitesPolicy = _cipherSuites,
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
            ClientCertificateRequired = true,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = (_, certificate, chain, _) => _validator.Validate(peer, certificate, chain, client),
        };
    }

    internal static ServerCertificate LoadServerCertificate(string certFile, string keyFile)
    {
        try
        {
            var chain = new X509Certificate2Collection();
            chain.ImportFromPemFile(certFile);
            using var leafWithKey = X509Certificate2.CreateFromPemFile(certFile, keyFile);
            // Re-import so the private key is usable by SslStream on every platform.
            var leaf = X509CertificateLoader.LoadPkcs12(leafWithKey.Export(X509ContentType.Pkcs12), null);
            var intermediates = new X509Certificate2Collection();
            foreach (var cert in chain)
            {
                if (!cert.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span))
                {
                    intermediates.Add(cert);
                }
            }

            return new ServerCertificate(SslStreamCertificateContext.Create(leaf, intermediates, offline: true), leaf);
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or ArgumentException)
        {
            throw new ConfigurationException($"cannot load --cert-file {certFile} with --key-file {keyFile}: {e.Message}", e);
        }
    }

    internal static X509Certificate2Collection LoadAuthorities(string flag, string file)
    {
        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(file);
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException)
        {
            throw new ConfigurationException($"cannot read {flag} {file}: {e.Message}", e);
        }

        if (authorities.Count == 0)
        {
            throw new ConfigurationException($"{flag} {file} holds no PEM certificate");
        }

        return authorities;
    }
}
