using EtcdShield.Tls;

namespace EtcdShield.Authorization;

/// <summary>Who sent a request: the certificate's names, the policy identity they matched (if any still does), and from where.</summary>
internal sealed record Caller(ClientIdentity Certificate, PolicyIdentity? Identity, AccessPolicy Policy, string Peer)
{
    /// <summary>The client trust (CAs, CRLs) the caller was last checked against.</summary>
    public ClientTrust? Trust { get; init; }

    /// <summary>True when a CRL loaded after the client connected revokes its certificate.</summary>
    public bool Revoked { get; init; }

    /// <summary>True when the client's CA was taken out of --trusted-ca-file after it connected.</summary>
    public bool Untrusted { get; init; }

    /// <summary>The policy's name for the caller, or the certificate's names when no identity matches any more.</summary>
    public string Name => Identity?.Name ?? Certificate.ToString();
}
