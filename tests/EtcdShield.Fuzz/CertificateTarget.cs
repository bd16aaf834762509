using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Authorization;
using EtcdShield.Tls;

namespace EtcdShield.Fuzz;

/// <summary>
/// A client certificate (DER), which anyone who connects presents: its subject and SANs read as the proxy's
/// identity (<see cref="ClientIdentity.FromCertificate"/>) and matched against a policy of every match kind.
/// Only the certificate loader may refuse (<see cref="CryptographicException"/>); reading names must not throw.
/// </summary>
internal sealed class CertificateTarget : FuzzTarget
{
    private const string Policy = """
        identities:
          - name: by-cn
            match: { cn: [admin, "kube-apiserver-etcd-client"] }
            methods: [Maintenance/Status]
          - name: by-ou
            match: { ou: platform-ops }
            methods: [Maintenance/Status]
          - name: by-dns
            match: { dns: reader.etcdshield.test }
            methods: [Maintenance/Status]
          - name: by-uri
            match: { uri: "spiffe://etcdshield.test/ns/**" }
            methods: [Maintenance/Status]
        """;

    public override string Name => "certificate";

    public override FuzzAction Prepare(string directory)
    {
        var policy = new AccessPolicy(PolicyFile.Parse(Policy), "fuzz");
        return input =>
        {
            X509Certificate2 certificate;
            try
            {
                certificate = X509CertificateLoader.LoadCertificate(input);
            }
            catch (CryptographicException)
            {
                return;
            }

            using (certificate)
            {
                var identity = ClientIdentity.FromCertificate(certificate);
                _ = identity.ToString();
                _ = policy.Resolve(identity);
            }
        };
    }

    public override IEnumerable<(string Name, byte[] Bytes)> Seeds(string directory)
    {
        yield return ("cn", SelfSigned("CN=kube-apiserver-etcd-client"));
        yield return ("cn-ou-o", SelfSigned("CN=etcd-backup,OU=platform-ops,O=EtcdShield"));
        yield return ("two-cn", SelfSigned("CN=alice,CN=admin"));
        yield return ("sans", SelfSigned("CN=reader", san =>
        {
            san.AddDnsName("reader.etcdshield.test");
            san.AddUri(new Uri("spiffe://etcdshield.test/ns/apps/sa/writer"));
            san.AddIpAddress(System.Net.IPAddress.Loopback);
            san.AddEmailAddress("ops@etcdshield.test");
        }));
        yield return ("no-subject", SelfSigned("", san => san.AddUri(new Uri("spiffe://etcdshield.test/ns/apps/sa/only-uri"))));
    }

    private static byte[] SelfSigned(string subject, Action<SubjectAlternativeNameBuilder>? sans = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        if (sans is not null)
        {
            var builder = new SubjectAlternativeNameBuilder();
            sans(builder);
            request.CertificateExtensions.Add(builder.Build());
        }

        var start = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        using var certificate = request.CreateSelfSigned(start, start.AddYears(1));
        return certificate.RawData;
    }
}
