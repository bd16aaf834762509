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
        _anchors = authorities.Select(CertificateId.OfAnchor).ToHashSet();
        _revocationsByIssuer = new Dictionary<string, RevocationList>(StringComparer.Ordinal);
        foreach (var list in revocations)
        {
            // By signing CA, not by issuer name: a CA renewed under its old name has CRLs of its own. The newest
            // list of a CA wins when a file holds several.
            if (!_revocationsByIssuer.TryGetValue(list.Authority, out var known) || list.IsNewerThan(known))
            {
                _revocationsByIssuer[list.Authority] = list;
            }
        }

        Revocations = [.. _revocationsByIssuer.Values];
    }

    public X509Certificate2Collection Authorities { get; }

    /// <summary>The CRL in force for each CA that has one.</summary>
    public IReadOnlyList<RevocationList> Revocations { get; }

    /// <param name="history">Refuses, for the life of the process, a CRL older than one already in force.</param>
    public static ClientTrust Load(string trustedCaFile, string? crlFile, RevocationHistory history)
    {
        var authorities = ServerTls.LoadAuthorities("--trusted-ca-file", trustedCaFile);
        if (crlFile is null)
        {
            return new ClientTrust(authorities, []);
        }

        var trust = new ClientTrust(authorities, RevocationList.LoadFile(crlFile, authorities));
        history.Advance(trust.Revocations, crlFile);
        return trust;
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
