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

    public void Admit(ClientIdentity identity) => Identity = identity;

    /// <summary>The caller under <paramref name="policy"/>: resolved once per policy version and connection.</summary>
    public Caller Under(AccessPolicy policy)
    {
        var resolved = _resolved;
        if (resolved is not null && ReferenceEquals(resolved.Policy, policy))
        {
            return resolved;
        }

        // Two requests racing here both resolve the same answer; whichever is stored is right.
        var identity = Identity ?? ClientIdentity.Unknown;
        resolved = new Caller(identity, policy.Resolve(identity), policy, Peer);
        _resolved = resolved;
        return resolved;
    }
}
