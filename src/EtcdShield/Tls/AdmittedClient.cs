using System.Net;

namespace EtcdShield.Tls;

/// <summary>
/// The client at the other end of one connection, as the TLS handshake admitted it: where it connects from, the
/// identity its certificate names and the chain it was admitted with. <see cref="ServerTls"/> leaves it in the
/// connection's items so that requests need not parse the certificate again; it is filled in once, during the
/// handshake, before the connection carries any request.
/// </summary>
internal sealed class AdmittedClient
{
    public const string ItemKey = "etcdshield.client";

    public AdmittedClient(EndPoint? peer) => Peer = peer?.ToString() ?? "unknown";

    public string Peer { get; }

    public ClientIdentity? Identity { get; private set; }

    /// <summary>The client's certificate chain as it was admitted, for CRLs and CA bundles loaded after the handshake.</summary>
    public IReadOnlyList<CertificateId> Chain { get; private set; } = [];

    public void Admit(ClientIdentity identity, IReadOnlyList<CertificateId> chain)
    {
        Identity = identity;
        Chain = chain;
    }
}
