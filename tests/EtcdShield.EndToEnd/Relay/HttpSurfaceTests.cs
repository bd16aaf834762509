using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// What the proxy serves over plain HTTP semantics besides the JSON gateway (tests/EtcdShield.EndToEnd/Gateway/): metrics by method and status code (counted on this proxy's own meters; the
/// Prometheus text itself is checked on a proxy alone in its process, in <see cref="ExecutableTests"/>), and
/// /health in etcd's shape on the metrics URL, following whether etcd answers; the client URL forwards /health to etcd.
/// </summary>
public sealed class HttpSurfaceTests(HttpSurfaceTests.Fixture fixture, ITestOutputHelper output) : IClassFixture<HttpSurfaceTests.Fixture>
{
    public sealed class Fixture : ShieldFixture;

    [Fact]
    public async Task Metrics_count_relayed_requests_by_method_and_status_code()
    {
        using var requests = fixture.Shield.Collect<long>(EtcdShield.Relay.RelayMetrics.MeterName, "etcdshield.requests");
        using var duration = fixture.Shield.Collect<double>(EtcdShield.Relay.RelayMetrics.MeterName, "etcdshield.request.duration");

        (await fixture.ThroughProxy.RunAsync("put", "metrics/k", "v")).EnsureSuccess();
        var future = await fixture.ThroughProxy.RunAsync("get", "metrics/k", "--rev=1000000");
        Assert.False(future.Succeeded);

        // Counted once the answer is on its way, so possibly just after etcdctl has it.
        await Eventually.HoldsAsync(
            () => Task.FromResult(requests.GetMeasurementSnapshot()),
            counted => Count(counted, "KV/Put", "OK") == 1 && Count(counted, "KV/Range", "OUT_OF_RANGE") == 1,
            TimeSpan.FromSeconds(10));
        Assert.Contains(duration.GetMeasurementSnapshot(), m => m.ContainsTags(Tag("method", "KV/Put")) && m.Value > 0);
        Assert.Contains(duration.GetMeasurementSnapshot(), m => m.ContainsTags(Tag("method", "KV/Range")) && m.Value > 0);
    }

    [Fact]
    public async Task Metrics_show_an_open_watch_as_an_active_stream_until_it_closes()
    {
        using var streams = fixture.Shield.Collect<long>(EtcdShield.Relay.RelayMetrics.MeterName, "etcdshield.streams.active");
        using var channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki);
        await using (var watch = new WatchSession(channel))
        {
            await watch.CreateAsync(new Protocol.Etcdserverpb.WatchCreateRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("metrics/watched") });
            await watch.NextAsync(r => r.Created);
            Assert.Equal(1, ActiveWatches(streams));
        }

        // The server notices the closed stream on its own time; nothing announces it but the gauge.
        await Eventually.HoldsAsync(() => Task.FromResult(ActiveWatches(streams)), active => active == 0, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Metrics_are_served_only_on_the_metrics_url_and_health_on_the_client_url_is_etcds()
    {
        using var plain = new HttpClient();
        using var tls = GrpcClients.Http(fixture.Pki);

        using var elsewhereOnMetrics = await plain.GetAsync(fixture.Shield.MetricsUrl + "/v3/kv/range");
        using var metricsOnClientPort = await tls.GetAsync(fixture.Shield.ClientUrl + "/metrics");
        using var healthOnClientPort = await tls.GetAsync(fixture.Shield.ClientUrl + "/health");
        var etcdsHealth = await healthOnClientPort.Content.ReadFromJsonAsync<JsonElement>();

        Assert.Equal(HttpStatusCode.NotFound, elsewhereOnMetrics.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, metricsOnClientPort.StatusCode);
        // Forwarded to etcd (Gateway/EtcdHttpEndpoints): etcd's answer, without the proxy's own status and warnings.
        Assert.Equal(HttpStatusCode.OK, healthOnClientPort.StatusCode);
        Assert.Equal("true", etcdsHealth.GetProperty("health").GetString());
        Assert.False(etcdsHealth.TryGetProperty("warnings", out _));
    }

    [Fact]
    public async Task Health_is_200_while_etcd_answers_and_503_once_it_is_stopped()
    {
        // Its own etcd and proxy: this test stops the etcd.
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, etcd.ClientUrl, output: output);
        using var http = new HttpClient();

        async Task<(HttpStatusCode Status, JsonElement Body)> HealthAsync()
        {
            using var response = await http.GetAsync(shield.MetricsUrl + "/health");
            return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
        }

        var (healthyStatus, healthyBody) = await HealthAsync();
        await etcd.StopAsync();
        // /health answers from the readiness round, which is reused for up to Readiness.CacheFor.
        var (unhealthyStatus, unhealthyBody) = await Eventually.HoldsAsync(HealthAsync, h => h.Status != HttpStatusCode.OK, TimeSpan.FromSeconds(30));

        Assert.Equal(HttpStatusCode.OK, healthyStatus);
        Assert.Equal("true", healthyBody.GetProperty("health").GetString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, unhealthyStatus);
        Assert.Equal("false", unhealthyBody.GetProperty("health").GetString());
        Assert.Contains("Unavailable", unhealthyBody.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    private static KeyValuePair<string, object?> Tag(string name, string value) => new(name, value);

    private static long Count(IEnumerable<CollectedMeasurement<long>> requests, string method, string code) =>
        requests.Where(m => m.ContainsTags(Tag("method", method), Tag("code", code))).Sum(m => m.Value);

    /// <summary>The watch streams open on the proxy, counted from when <paramref name="streams"/> was created.</summary>
    private static long ActiveWatches(MetricCollector<long> streams) =>
        streams.GetMeasurementSnapshot().Where(m => m.ContainsTags(Tag("method", "Watch/Watch"))).Sum(m => m.Value);
}
