using EtcdShield.Tls;

namespace EtcdShield.Authorization;

/// <summary>
/// The caller of one connection's requests, cached per policy and trust version, so a reloaded policy applies to
/// the very next request, also on connections already open, without resolving the identity on every request.
/// </summary>
internal sealed class ConnectionCaller
{
    private readonly AdmittedClient _client;
    private volatile Caller? _resolved;

    public ConnectionCaller(AdmittedClient client) => _client = client;

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
        var identity = _client.Identity ?? ClientIdentity.Unknown;
        var revoked = trust.RevokedIn(_client.Chain) is not null;
        var untrusted = !trust.Anchors(_client.Chain);
        resolved = new Caller(identity, revoked || untrusted ? null : policy.Resolve(identity), policy, _client.Peer) { Trust = trust, Revoked = revoked, Untrusted = untrusted };
        _resolved = resolved;
        return resolved;
    }
}
