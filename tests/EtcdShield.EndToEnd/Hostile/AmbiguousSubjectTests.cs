using System.Security.Cryptography;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A client whose certificate names it ambiguously tries to pass for an allowed identity: two CNs, one of them
/// the allowed name (in either order, so whichever a parser picks), or the allowed CN inside a multi-valued RDN,
/// from the trusted CA or self-signed. Each handshake is refused and logged as a refusal (never an exception or
/// an Error), nothing reaches etcd, and the proxy goes on serving everyone else.
/// </summary>
public sealed class AmbiguousSubjectTests(AmbiguousSubjectTests.Fixture fixture) : IClassFixture<AmbiguousSubjectTests.Fixture>
{
    private const string CommonName = "2.5.4.3";
    private const string OrganizationalUnit = "2.5.4.11";
    private static readonly TimeSpan LogDeadline = TimeSpan.FromSeconds(10);

    public sealed class Fixture : ShieldFixture;

    [Theory]
    [InlineData("ambiguous-allowed-last", "someone-else", ShieldServer.ClientName)]
    [InlineData("ambiguous-allowed-first", ShieldServer.ClientName, "someone-else")]
    public async Task A_certificate_with_two_common_names_is_refused(string name, string first, string second)
    {
        var client = fixture.Pki.IssueClient(name, commonName: null, subject: TestPki.Subject([(CommonName, first)], [(CommonName, second)]));

        await AssertRefusedAsync(client, $"hostile/{name}");

        var refusal = await fixture.Shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "AmbiguousClientIdentity") && e.Message.Contains(Fingerprint(client), StringComparison.Ordinal), LogDeadline);
        Assert.Equal(LogLevel.Warning, refusal.Level);
        Assert.Contains("more than one CN", refusal.Message, StringComparison.Ordinal);
        await AssertStillServingAsync(name);
    }

    [Fact]
    public async Task A_certificate_from_the_trusted_ca_with_a_multi_valued_rdn_is_refused_without_an_error()
    {
        var client = fixture.Pki.IssueClient("ambiguous-multi-valued", commonName: null,
            subject: TestPki.Subject([(CommonName, ShieldServer.ClientName), (OrganizationalUnit, "ops")]));

        await AssertRefusedAsync(client, "hostile/ambiguous-multi-valued");

        var refusal = await fixture.Shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "AmbiguousClientIdentity") && e.Message.Contains(Fingerprint(client), StringComparison.Ordinal), LogDeadline);
        Assert.Contains("multi-valued", refusal.Message, StringComparison.Ordinal);
        await AssertStillServingAsync("ambiguous-multi-valued");
    }

    [Fact]
    public async Task A_self_signed_certificate_with_a_multi_valued_rdn_is_refused_as_untrusted_before_its_subject_is_read()
    {
        var client = fixture.Pki.IssueSelfSignedClient("ambiguous-self-signed", TestPki.Subject([(CommonName, ShieldServer.ClientName), (OrganizationalUnit, "ops")]));

        await AssertRefusedAsync(client, "hostile/ambiguous-self-signed");

        var refusal = await fixture.Shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "UntrustedCertificate") && e.Message.Contains(Fingerprint(client), StringComparison.Ordinal), LogDeadline);
        Assert.Contains("certificate not accepted", refusal.Message, StringComparison.Ordinal);
        // The chain decided; the subject was never parsed for an identity.
        Assert.DoesNotContain(fixture.Shield.Logs.Entries, e => e.Is("EtcdShield.Tls.ClientCertificateValidator", "AmbiguousClientIdentity") && e.Message.Contains(Fingerprint(client), StringComparison.Ordinal));
        await AssertStillServingAsync("ambiguous-self-signed");
    }

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static string Fingerprint(CertificatePaths client)
    {
        using var certificate = client.LoadCertificate();
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(certificate.RawData))[..16];
    }

    /// <summary>A real TLS handshake with <paramref name="client"/>'s certificate fails, and its write never reaches etcd.</summary>
    private async Task AssertRefusedAsync(CertificatePaths client, string key)
    {
        using var channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki, client);

        var refused = await Assert.ThrowsAsync<RpcException>(() => new KV.KVClient(channel).PutAsync(new PutRequest { Key = B(key), Value = B("intruder") }).ResponseAsync);

        // Under TLS 1.3 the server judges the client certificate after the client has finished its side of the
        // handshake, so the client learns of the refusal either before sending (UNAVAILABLE) or while sending its
        // first request (INTERNAL, from the closed connection): both are a transport failure, never an answer.
        Assert.True(refused.StatusCode is StatusCode.Unavailable or StatusCode.Internal, refused.ToString());
        Assert.True(refused.Status.DebugException is HttpRequestException or IOException or System.Security.Authentication.AuthenticationException, refused.ToString());
        Assert.Empty((await fixture.EtcdDirectly.RunAsync("get", key)).EnsureSuccess().StdOut);
    }

    private async Task AssertStillServingAsync(string name)
    {
        Assert.Empty(fixture.Shield.Logs.AtOrAbove(LogLevel.Error));
        (await fixture.ThroughProxy.RunAsync("put", $"hostile/{name}/others", "still served")).EnsureSuccess();
    }
}
