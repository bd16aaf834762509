using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A client (or someone in the network path rewriting its hello) offers only old protocol versions or cipher
/// suites without authenticated encryption, hoping the proxy settles for them. With a valid, allowed client
/// certificate throughout, only TLS 1.2 with AEAD suites and TLS 1.3 complete a handshake; the others are
/// refused by the server with an alert.
/// </summary>
public sealed class TlsDowngradeTests(KnownAttacksFixture fixture) : IClassFixture<KnownAttacksFixture>
{
    [Theory]
    [InlineData("-tls1_3", "DEFAULT", "TLS_AES_")]
    [InlineData("-tls1_2", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256")]
    [InlineData("-tls1_2", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305")]
    [InlineData("-tls1_2", "ECDHE-ECDSA-AES128-SHA", null)]
    [InlineData("-tls1_2", "ECDHE-ECDSA-AES256-SHA384", null)]
    [InlineData("-tls1_1", "DEFAULT@SECLEVEL=0", null)]
    [InlineData("-tls1", "DEFAULT@SECLEVEL=0", null)]
    [InlineData("-tls1_2", "ECDHE-ECDSA-AES128-SHA256@SECLEVEL=0", null)]
    public async Task A_client_offering_only_an_old_version_or_a_non_aead_suite_gets_no_handshake(string version, string ciphers, string? negotiated)
    {
        var client = ShieldServer.DefaultClient(fixture.Pki);
        var endpoint = new Uri(fixture.Shield.ClientUrl).Authority;

        // An allowed client certificate throughout: only the protocol version and the cipher suites offered vary.
        // OPENSSL_CONF=/dev/null keeps the system's own minimums out of it, so the client really offers them.
        var handshake = await ExternalCommand.RunAsync(
            "/usr/bin/openssl",
            ["s_client", "-connect", endpoint, "-CAfile", fixture.Pki.CaFile, "-cert", client.CertFile, "-key", client.KeyFile, version, "-cipher", ciphers],
            standardInput: "",
            environment: new Dictionary<string, string?> { ["OPENSSL_CONF"] = "/dev/null" });

        Assert.False(handshake.TimedOut, handshake.ToString());
        if (negotiated is null)
        {
            // Refused by the server, which said so with a TLS alert (not a client that declined to try).
            Assert.True(handshake.StdOut.Contains("Cipher is (NONE)", StringComparison.Ordinal), handshake.ToString());
            Assert.True(handshake.StdErr.Contains("SSL alert number", StringComparison.Ordinal), handshake.ToString());
        }
        else
        {
            Assert.True(handshake.StdOut.Contains("Cipher is " + negotiated, StringComparison.Ordinal), handshake.ToString());
        }
    }
}
