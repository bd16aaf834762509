using System.Security.Cryptography.X509Certificates;
using EtcdShield.Tls;

namespace EtcdShield.Tests.Tls;

/// <summary>
/// Certificates the fuzzer (tests/fuzz.sh, target certificate) found that make reading the identity throw. Both
/// are finding 11 of issue 9: a parse failure is a refusal, never an exception.
/// </summary>
public sealed class ClientIdentityFuzzRegressionTests
{
    /// <summary>The loader accepts it; the subject (an OU value with a corrupted tag) throws CryptographicException when its RDNs are enumerated.</summary>
    private const string CorruptedSubjectRdn =
        "MIIBkjCCATigAwIBAgIJAK62jozsZbxnMAoGCCqGSM49BAMCMEIxEzARBgNVBAoTCkV0Y2RTaGllbGQxFTATBgNVBAsTDHBsYXRmb3JtLW9wczEUMBIGA1UEAxMLZXRjZC1iYWNrdXAwHhcNMjUwMTAxMDAwMDAwWhcNMjYwMTAxMDAwMDAwWjBCMRMwEQYDVQQKEwpFdGNkU2hpZWxkMRUwEwYDVQQLEwxwbGF0Zm9ybS1vcIkxFDASBgNVBAMTC2V0Y2QtYmFja3VwMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAET1VbnjYWUk/hvwoo5xqtFsaCzGzOR4dTasHlf4DEK3JWy7NF0ONOYgw++n6NvkurYJi/oj8DEQpJZbFgabU3QaMXMBUwEwYDVR0lBAwwCgYIKwYBBQUHAwIwCgYIKoZIzj0EAwIDSAAwRQIhAJTTlr3TuRW/28gtbGlaz6dNgLTQJojcO6Rxf137HrcmAiBV4jOhP7orZ/QBGPV7ZZqv29r+O5NNAJRWtHlmrIKYkg==";

    [Fact]
    public void A_certificate_whose_subject_cannot_be_parsed_is_refused_without_an_exception()
    {
        using var certificate = X509CertificateLoader.LoadCertificate(Convert.FromBase64String(CorruptedSubjectRdn));

        var identity = ClientIdentity.FromCertificate(certificate);

        Assert.NotNull(identity.Refusal);
    }
}
