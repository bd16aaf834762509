using System.Security.Cryptography.X509Certificates;

namespace EtcdShield.Tls;

/// <summary>
/// What a client certificate must chain to (<c>--trusted-ca-file</c>) and what has been revoked since
/// (<c>--client-crl-file</c>). Loaded and reloaded as one, because a CRL is only valid with its CA.
/// </summary>
internal sealed class ClientTrust
{
    private readonly Dictionary<string, RevocationList> _revocationsByIssuer;
    private readonly HashSet<CertificateId> _anchors;

    public ClientTrust(X509Certificate2Collection authorities, IReadOnlyList<RevocationList> revocations)
    {
        Authorities = authorities;
        Revocations = revocations;
        _anchors = authorities.Select(CertificateId.Of).ToHashSet();
        _revocationsByIssuer = new Dictionary<string, RevocationList>(StringComparer.Ordinal);
        foreach (var list in revocations)
        {
            // The newest list of an issuer wins when a file holds several.
            var issuer = CertificateId.IssuerKey(list.Issuer);
            if (!_revocationsByIssuer.TryGetValue(issuer, out var known) || known.ThisUpdate < list.ThisUpdate)
            {
                _revocationsByIssuer[issuer] = list;
            }
        }
    }

    public X509Certificate2Collection Authorities { get; }

    public IReadOnlyList<RevocationList> Revocations { get; }

    public static ClientTrust Load(string trustedCaFile, string? crlFile)
    {
        var authorities = ServerTls.LoadAuthorities("--trusted-ca-file", trustedCaFile);
        var revocations = crlFile is null ? [] : RevocationList.LoadFile(crlFile, authorities);
        return new ClientTrust(authorities, revocations);
    }

    /// <summary>
    /// Whether a client's chain, as it was built when the client connected, still ends in one of these authorities:
    /// a CA taken out of the bundle also ends what its clients' open connections may do.
    /// </summary>
    public bool Anchors(IReadOnlyList<CertificateId> chain) => chain.Count > 0 && _anchors.Contains(chain[^1]);

    /// <summary>
    /// The certificate of a client's chain that a CRL revokes, if any: the client's own or an intermediate's.
    /// Issuers without a CRL in the file are not checked, as with etcd's --client-crl-file.
    /// </summary>
    public CertificateId? RevokedIn(IReadOnlyList<CertificateId> chain)
    {
        foreach (var certificate in chain)
        {
            if (_revocationsByIssuer.TryGetValue(certificate.Issuer, out var list) && list.Revokes(certificate.Serial))
            {
                return certificate;
            }
        }

        return null;
    }
}
