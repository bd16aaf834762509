using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Reload;

namespace EtcdShield.Tls;

/// <summary>
/// Decides, during the TLS handshake, whether a client may connect at all: its certificate must chain to
/// one of our trusted CAs (not the machine's roots), be valid now, be meant for client authentication, not be
/// revoked by <c>--client-crl-file</c>, name its holder unambiguously, and be admitted by <see cref="IClientAdmission"/>
/// (the policy). A
/// refused client never gets to send a request. Trust and policy are read afresh for every handshake, so reloads
/// apply to the next client. Nothing of the certificate is read for an identity before its chain is valid: until
/// then it is an attacker's input.
/// </summary>
internal sealed partial class ClientCertificateValidator
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private readonly ReloadableFiles<ClientTrust> _trust;
    private readonly IClientAdmission _admission;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public ClientCertificateValidator(ReloadableFiles<ClientTrust> trust, IClientAdmission admission, TimeProvider time, ILogger<ClientCertificateValidator> logger)
    {
        _trust = trust;
        _admission = admission;
        _time = time;
        _logger = logger;
    }

    /// <param name="connection">Receives the admitted client's identity, for the requests on this connection.</param>
    public bool Validate(EndPoint? peer, X509Certificate? certificate, X509Chain? presentedChain, AdmittedClient? connection = null)
    {
        if (certificate is null)
        {
            Log.NoCertificate(_logger, peer);
            return false;
        }

        var trust = _trust.Current;
        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(trust.Authorities);
        // Revocation is checked below against --client-crl-file, never by fetching from the network.
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

        if (!chain.Build(leaf))
        {
            var reasons = string.Join(", ", chain.ChainStatus.Select(s => s.Status).Distinct());
            Log.UntrustedCertificate(_logger, peer, Describe(leaf), reasons);
            return false;
        }

        var identity = ClientIdentity.FromCertificate(leaf);
        if (identity.Refusal is { } refusal)
        {
            Log.AmbiguousClientIdentity(_logger, peer, Describe(leaf), refusal);
            return false;
        }

        var chainIds = CertificateId.Of(chain);
        if (trust.RevokedIn(chainIds) is { } revoked)
        {
            Log.Revoked(_logger, peer, identity, revoked.Serial);
            return false;
        }

        if (!_admission.Admits(identity))
        {
            Log.NotAllowed(_logger, peer, identity);
            return false;
        }

        connection?.Admit(identity, chainIds);
        return true;
    }

    /// <summary>How a certificate whose names are not (or cannot be) read is logged: .NET's rendering of its subject and its fingerprint.</summary>
    private static string Describe(X509Certificate2 certificate) =>
        $"subject '{certificate.Subject}' sha256:{Convert.ToHexStringLower(certificate.GetCertHash(HashAlgorithmName.SHA256))[..16]}";

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.NoCertificate, EventName = nameof(EventIds.NoCertificate), Level = LogLevel.Warning, Message = "Refused client {Peer}: no client certificate")]
        public static partial void NoCertificate(ILogger logger, EndPoint? peer);

        [LoggerMessage(EventId = EventIds.UntrustedCertificate, EventName = nameof(EventIds.UntrustedCertificate), Level = LogLevel.Warning, Message = "Refused client {Peer} ({Certificate}): certificate not accepted: {Reasons}")]
        public static partial void UntrustedCertificate(ILogger logger, EndPoint? peer, string certificate, string reasons);

        [LoggerMessage(EventId = EventIds.NotAllowed, EventName = nameof(EventIds.NotAllowed), Level = LogLevel.Warning, Message = "Refused client {Peer} ({Identity}): identity is not on the allowlist or in the policy")]
        public static partial void NotAllowed(ILogger logger, EndPoint? peer, ClientIdentity identity);

        [LoggerMessage(EventId = EventIds.Revoked, EventName = nameof(EventIds.Revoked), Level = LogLevel.Warning, Message = "Refused client {Peer} ({Identity}): a certificate of its chain (serial {Serial}) is revoked by --client-crl-file")]
        public static partial void Revoked(ILogger logger, EndPoint? peer, ClientIdentity identity, string serial);

        [LoggerMessage(EventId = EventIds.AmbiguousClientIdentity, EventName = nameof(EventIds.AmbiguousClientIdentity), Level = LogLevel.Warning, Message = "Refused client {Peer} ({Certificate}): its certificate does not name it unambiguously: {Reason}")]
        public static partial void AmbiguousClientIdentity(ILogger logger, EndPoint? peer, string certificate, string reason);
    }
}
