using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Tls;

namespace EtcdShield.Tests.Tls;

public sealed class ClientTrustAnchorTests
{
    private static X509Certificate2 Authority(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    [Fact]
    public void A_chain_is_anchored_only_while_its_root_is_in_the_bundle()
    {
        using var kept = Authority("kept");
        using var removed = Authority("removed");
        // Same subject as the kept CA, another certificate: a name alone does not anchor a chain.
        using var impostor = Authority("kept");
        var trust = new ClientTrust([kept], []);
        var leafIssuer = CertificateId.IssuerKey(kept);

        Assert.True(trust.Anchors([new CertificateId(leafIssuer, "01"), CertificateId.OfAnchor(kept)]));
        Assert.False(trust.Anchors([new CertificateId(leafIssuer, "01"), CertificateId.OfAnchor(removed)]));
        Assert.False(trust.Anchors([CertificateId.OfAnchor(impostor)]));
        Assert.False(trust.Anchors([]));
    }
}
