using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace EtcdShield.Tls;

/// <summary>
/// Decides, during the TLS handshake, whether a client may connect at all: its certificate must chain to
/// one of our trusted CAs (not the machine's roots), be valid now, be meant for client authentication,
/// and name an identity on the allowlist. A refused client never gets to send a request.
/// </summary>
internal sealed partial class ClientCertificateValidator
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private readonly X509Certificate2Collection _trustedAuthorities;
    private readonly ClientAllowList _allowList;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public ClientCertificateValidator(X509Certificate2Collection trustedAuthorities, ClientAllowList allowList, TimeProvider time, ILogger<ClientCertificateValidator> logger)
    {
        _trustedAuthorities = trustedAuthorities;
        _allowList = allowList;
        _time = time;
        _logger = logger;
    }

    public bool Validate(EndPoint? peer, X509Certificate? certificate, X509Chain? presentedChain)
    {
        if (certificate is null)
        {
            Log.NoCertificate(_logger, peer);
            return false;
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_trustedAuthorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = _time.GetUtcNow().UtcDateTime;
        chain.ChainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        if (presentedChain is not null)
        {
            // Intermediates the client sent along: usable for building, never trusted on their own.
            foreach (var element in presentedChain.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        var identity = ClientIdentity.FromCertificate(leaf);
        if (!chain.Build(leaf))
        {
            var reasons = string.Join(", ", chain.ChainStatus.Select(s => s.Status).Distinct());
            Log.UntrustedCertificate(_logger, peer, identity, reasons);
            return false;
        }

        if (!_allowList.Admits(identity))
        {
            Log.NotAllowed(_logger, peer, identity);
            return false;
        }

        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Refused client {Peer}: no client certificate")]
        public static partial void NoCertificate(ILogger logger, EndPoint? peer);

        [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Refused client {Peer} ({Identity}): certificate not accepted: {Reasons}")]
        public static partial void UntrustedCertificate(ILogger logger, EndPoint? peer, ClientIdentity identity, string reasons);

        [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Refused client {Peer} ({Identity}): identity is not on the allowlist")]
        public static partial void NotAllowed(ILogger logger, EndPoint? peer, ClientIdentity identity);
    }
}
