using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Authorization;

/// <summary>
/// What the operator is told about certificates before they become an outage, and the TLS floor: a serving
/// certificate inside the warning window degrades /health, is logged and exported with its seconds left; with
/// --tls-min-version 1.3 a TLS 1.2 client cannot complete a handshake.
/// </summary>
public sealed class TlsPolicyTests : IAsyncLifetime
{
    private TestPki Pki { get; } = new();
    private EtcdProcess? etcd;

    private EtcdProcess Etcd => etcd ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => etcd = await SharedEtcd.GetAsync();

    public Task DisposeAsync()
    {
        Pki.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_serving_certificate_close_to_expiry_degrades_health_and_is_logged_and_exported()
    {
        var expiring = Pki.IssueServer("server-expiring", notAfter: DateTimeOffset.UtcNow.AddDays(3));
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags:
            ["--cert-file", expiring.CertFile, "--key-file", expiring.KeyFile, "--cert-expiry-warning", "720h"]);
        using var expiry = shield.Collect<double>(EtcdShield.Tls.CertificateExpiry.MeterName, "etcdshield.certificate.expiry");

        using var http = new HttpClient();
        using var health = JsonDocument.Parse(await http.GetStringAsync(new Uri(shield.MetricsUrl + "/health")));
        var warning = await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Tls.CertificateExpiry", "Expiring"), TimeSpan.FromSeconds(10));
        expiry.RecordObservableInstruments();

        Assert.Equal("true", health.RootElement.GetProperty("health").GetString());
        Assert.Equal("degraded", health.RootElement.GetProperty("status").GetString());
        Assert.Contains(health.RootElement.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.StartsWith("serving certificate", StringComparison.Ordinal));
        Assert.Contains("serving certificate", warning.Message, StringComparison.Ordinal);
        var serving = Assert.Single(expiry.GetMeasurementSnapshot(), m => m.ContainsTags(new KeyValuePair<string, object?>("role", "serving")));
        Assert.InRange(serving.Value, TimeSpan.FromDays(2).TotalSeconds, TimeSpan.FromDays(3).TotalSeconds);
    }

    [Fact]
    public async Task A_crl_past_its_next_update_degrades_health()
    {
        var crl = Pki.WriteCrl("stale", [], nextUpdate: DateTimeOffset.UtcNow.AddSeconds(-30));
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--client-crl-file", crl]);

        using var http = new HttpClient();
        using var health = JsonDocument.Parse(await http.GetStringAsync(new Uri(shield.MetricsUrl + "/health")));

        Assert.Equal("degraded", health.RootElement.GetProperty("status").GetString());
        Assert.Contains(health.RootElement.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains("was due for an update", StringComparison.Ordinal));
        (await shield.Etcdctl(Pki).RunAsync("put", "tls/stale-crl", "still served")).EnsureSuccess();
    }

    [Fact]
    public async Task Certificates_far_from_expiry_keep_health_ok()
    {
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--cert-expiry-warning", "24h"]);

        using var http = new HttpClient();
        using var health = JsonDocument.Parse(await http.GetStringAsync(new Uri(shield.MetricsUrl + "/health")));

        Assert.Equal("ok", health.RootElement.GetProperty("status").GetString());
        Assert.Empty(health.RootElement.GetProperty("warnings").EnumerateArray());
    }

    [Theory]
    [InlineData("-tls1_2", false)]
    [InlineData("-tls1_3", true)]
    public async Task With_tls_min_version_1_3_only_tls_1_3_clients_get_in(string version, bool admitted)
    {
        await using var shield = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl, flags: ["--tls-min-version", "1.3"]);
        var client = ShieldServer.DefaultClient(Pki);

        var handshake = await ExternalCommand.RunAsync(
            "/usr/bin/openssl",
            ["s_client", "-connect", new Uri(shield.ClientUrl).Authority, "-CAfile", Pki.CaFile, "-cert", client.CertFile, "-key", client.KeyFile, version],
            standardInput: "",
            environment: new Dictionary<string, string?> { ["OPENSSL_CONF"] = "/dev/null" });

        Assert.False(handshake.TimedOut, handshake.ToString());
        Assert.Equal(admitted, !handshake.StdOut.Contains("Cipher is (NONE)", StringComparison.Ordinal));
    }
}
