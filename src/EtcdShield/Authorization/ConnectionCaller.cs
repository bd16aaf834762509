using System.Net;
using EtcdShield.Tls;

namespace EtcdShield.Authorization;

/// <summary>
/// The client at the other end of one connection, as the TLS handshake admitted it. Kept in the connection's
/// items so that requests need not parse the certificate again; the policy identity is cached per policy
/// version, so a reloaded policy applies to the very next request, also on connections already open.
/// </summary>
internal sealed class ConnectionCaller
{
    public const string ItemKey = "etcdshield.caller";

    private volatile Caller? _resolved;

    public ConnectionCaller(EndPoint? peer) => Peer = peer?.ToString() ?? "unknown";

    public string Peer { get; }

    public ClientIdentity? Identity { get; private set; }

    /// <summary>The client's certificate chain as it was admitted, for CRLs loaded after the handshake.</summary>
    public IReadOnlyList<CertificateId> Chain { get; private set; } = [];

    public void Admit(ClientIdentity identity, IReadOnlyList<CertificateId> chain)
    {
        Identity = identity;
        Chain = chain;
    }

    /// <summary>
    /// The caller under <paramref name="policy"/> and <paramref name="trust"/>: resolved once per version of each
    /// and connection. A client whose certificate a newer CRL revokes, or whose CA left the bundle, matches no
    /// identity from then on, so a revocation also ends what an already open connection may do.
    /// </summary>
    public Caller Under(AccessPolicy policy, ClientTrust trust)
    {
        var resolved = _resolved;
        if (resolved is not null && ReferenceEquals(resolved.Policy, policy) && ReferenceEquals(resolved.Trust, trust))
        {
            return resolved;
        }

        // Two requests racing here both resolve the same answer; whichever is stored is right.
        var identity = Identity ?? ClientIdentity.Unknown;
        var revoked = trust.RevokedIn(Chain) is not null;
        var untrusted = !trust.Anchors(Chain);
        resolved = new Caller(identity, revoked || untrusted ? null : policy.Resolve(identity), policy, Peer) { Trust = trust, Revoked = revoked, Untrusted = untrusted };
        _resolved = resolved;
        return resolved;
    }
}
