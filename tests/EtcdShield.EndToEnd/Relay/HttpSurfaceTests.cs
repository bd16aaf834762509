using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// What the proxy serves over plain HTTP semantics: the etcd JSON gateway refused with 501 (forwarding it would
/// bypass encryption and policy), Prometheus metrics by method and status code, and /health in etcd's shape,
/// following whether etcd answers.
/// </summary>
[Collection(RunsAlone.Name)]
public sealed class HttpSurfaceTests(HttpSurfaceTests.Fixture fixture, ITestOutputHelper output) : IClassFixture<HttpSurfaceTests.Fixture>
{
    public sealed class Fixture : ShieldFixture;

    [Theory]
    [InlineData("/v3/kv/range", "{\"key\":\"Z2F0ZXdheS9r\"}")]
    [InlineData("/v3/kv/put", "{\"key\":\"Z2F0ZXdheS9r\",\"value\":\"djE=\"}")]
    [InlineData("/v3beta/kv/put", "{\"key\":\"Z2F0ZXdheS9r\",\"value\":\"djE=\"}")]
    public async Task The_json_gateway_is_refused_with_501_and_a_json_error_even_for_an_allowed_client(string path, string body)
    {
        using var http = GrpcClients.Http(fixture.Pki);

        using var response = await http.PostAsync(fixture.Shield.ClientUrl + path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        var error = await response.Content.ReadFromJsonAsync<JsonElement>();

        Assert.Equal(HttpStatusCode.NotImplemented, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("gateway is not supported", error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(12, error.GetProperty("code").GetInt32());
        Assert.Empty((await fixture.EtcdDirectly.RunAsync("get", "gateway/k")).EnsureSuccess().StdOut);
    }

    [Fact]
    public async Task Metrics_count_relayed_requests_by_method_and_status_code()
    {
        (await fixture.ThroughProxy.RunAsync("put", "metrics/k", "v")).EnsureSuccess();
        var future = await fixture.ThroughProxy.RunAsync("get", "metrics/k", "--rev=1000000");
        Assert.False(future.Succeeded);

        var text = await ScrapeUntilAsync(text =>
            Counter(text).Any(labels => labels.Contains("method=\"KV/Put\"", StringComparison.Ordinal) && labels.Contains("code=\"OK\"", StringComparison.Ordinal)) &&
            Counter(text).Any(labels => labels.Contains("method=\"KV/Range\"", StringComparison.Ordinal) && labels.Contains("code=\"OUT_OF_RANGE\"", StringComparison.Ordinal)));
        output.WriteLine(text);

        Assert.Contains("etcdshield_request_duration_seconds_bucket{", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE etcdshield_requests_total counter", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_show_an_open_watch_as_an_active_stream_until_it_closes()
    {
        using var channel = GrpcClients.Channel(fixture.Shield.ClientUrl, fixture.Pki);
        await using (var watch = new WatchSession(channel))
        {
            await watch.CreateAsync(new Protocol.Etcdserverpb.WatchCreateRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("metrics/watched") });
            await watch.NextAsync(r => r.Created);
            await ScrapeUntilAsync(text => ActiveWatches(text) == 1);
        }

        // The server notices the closed stream on its own time; nothing announces it but the gauge.
        await ScrapeUntilAsync(text => ActiveWatches(text) == 0);
    }

    [Fact]
    public async Task Metrics_and_health_are_served_only_on_the_metrics_url()
    {
        using var plain = new HttpClient();
        using var tls = GrpcClients.Http(fixture.Pki);

        using var elsewhereOnMetrics = await plain.GetAsync(fixture.Shield.MetricsUrl + "/v3/kv/range");
        using var metricsOnClientPort = await tls.GetAsync(fixture.Shield.ClientUrl + "/metrics");
        using var healthOnClientPort = await tls.GetAsync(fixture.Shield.ClientUrl + "/health");

        Assert.Equal(HttpStatusCode.NotFound, elsewhereOnMetrics.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, metricsOnClientPort.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, healthOnClientPort.StatusCode);
    }

    [Fact]
    public async Task Health_is_200_while_etcd_answers_and_503_once_it_is_stopped()
    {
        // Its own etcd and proxy: this test stops the etcd.
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = await ShieldServer.StartAsync(fixture.Pki, etcd.ClientUrl, output: output);
        using var http = new HttpClient();

        using var healthy = await http.GetAsync(shield.MetricsUrl + "/health");
        var healthyBody = await healthy.Content.ReadFromJsonAsync<JsonElement>();
        await etcd.StopAsync();
        using var unhealthy = await http.GetAsync(shield.MetricsUrl + "/health");
        var unhealthyBody = await unhealthy.Content.ReadFromJsonAsync<JsonElement>();

        Assert.Equal(HttpStatusCode.OK, healthy.StatusCode);
        Assert.Equal("true", healthyBody.GetProperty("health").GetString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, unhealthy.StatusCode);
        Assert.Equal("false", unhealthyBody.GetProperty("health").GetString());
        Assert.Contains("Unavailable", unhealthyBody.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Scrapes /metrics until <paramref name="condition"/> holds. The exporter caches its answer for a moment
    /// (300 ms by default), so a scrape right after another may not show the latest requests yet.
    /// </summary>
    private async Task<string> ScrapeUntilAsync(Func<string, bool> condition)
    {
        using var http = new HttpClient();
        return await Eventually.HoldsAsync(() => http.GetStringAsync(fixture.Shield.MetricsUrl + "/metrics"), condition, TimeSpan.FromSeconds(30));
    }

    private static double? ActiveWatches(string exposition) =>
        exposition.Split('\n')
            .Where(line => line.StartsWith("etcdshield_streams_active{", StringComparison.Ordinal) && line.Contains("method=\"Watch/Watch\"", StringComparison.Ordinal))
            .Select(line => (double?)double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture))
            .SingleOrDefault();

    /// <summary>The label sets of every etcdshield_requests_total sample.</summary>
    private static IEnumerable<string> Counter(string exposition) =>
        exposition.Split('\n')
            .Where(line => line.StartsWith("etcdshield_requests_total{", StringComparison.Ordinal))
            .Select(line => line[..(line.IndexOf('}', StringComparison.Ordinal) + 1)]);
}
