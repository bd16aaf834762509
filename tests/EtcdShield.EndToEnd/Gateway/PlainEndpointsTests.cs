using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using EtcdShield.EndToEnd.Hostile;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Gateway;

/// <summary>
/// etcd's plain HTTP endpoints on the proxy's client URL, forwarded to a real etcd: its own answers for an admitted
/// client, 403 for a certificate the policy in force no longer admits, 503 with etcd gone, all audited; /metrics
/// stays off the client URL. And CORS: no header at all unless --cors-allowed-origins, etcd's answers when set.
/// </summary>
public sealed class PlainEndpointsTests(PlainEndpointsTests.Plain plain, PlainEndpointsTests.Cors cors, ITestOutputHelper output)
    : IClassFixture<PlainEndpointsTests.Plain>, IClassFixture<PlainEndpointsTests.Cors>
{
    private const string AllowedOrigin = "https://app.example";

    public sealed class Plain : ShieldFixture
    {
        protected override bool Encrypt => false;
    }

    public sealed class Cors : ShieldFixture
    {
        protected override bool Encrypt => false;

        protected override IEnumerable<string> Flags => ["--cors-allowed-origins", AllowedOrigin + ",http://127.0.0.1:3000"];
    }

    [Theory]
    [InlineData("/version")]
    [InlineData("/health")]
    [InlineData("/health?serializable=true")]
    [InlineData("/readyz?exclude=serializable_read")]
    [InlineData("/livez")]
    public async Task The_proxy_answers_as_etcd_itself_answers(string path)
    {
        using var direct = new HttpClient();
        using var proxied = GrpcClients.Http(plain.Pki);

        using var fromEtcd = await direct.GetAsync(plain.Etcd.ClientUrl + path);
        using var throughProxy = await proxied.GetAsync(plain.Shield.ClientUrl + path);

        Assert.Equal(fromEtcd.StatusCode, throughProxy.StatusCode);
        Assert.Equal(fromEtcd.Content.Headers.ContentType?.ToString(), throughProxy.Content.Headers.ContentType?.ToString());
        Assert.Equal(await fromEtcd.Content.ReadAsStringAsync(), await throughProxy.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("/version")]
    [InlineData("/health")]
    public async Task Head_goes_to_etcd_and_comes_back_with_etcds_status(string path)
    {
        using var direct = new HttpClient();
        using var proxied = GrpcClients.Http(plain.Pki);

        using var fromEtcd = await direct.SendAsync(new HttpRequestMessage(HttpMethod.Head, plain.Etcd.ClientUrl + path));
        using var throughProxy = await proxied.SendAsync(new HttpRequestMessage(HttpMethod.Head, plain.Shield.ClientUrl + path));

        Assert.Equal(fromEtcd.StatusCode, throughProxy.StatusCode);
        Assert.Empty(await throughProxy.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Version_and_health_are_etcds_own_json()
    {
        using var proxied = GrpcClients.Http(plain.Pki);

        var version = await proxied.GetFromJsonAsync<JsonElement>(plain.Shield.ClientUrl + "/version");
        var health = await proxied.GetFromJsonAsync<JsonElement>(plain.Shield.ClientUrl + "/health");

        Assert.StartsWith("3.", version.GetProperty("etcdserver").GetString(), StringComparison.Ordinal);
        Assert.StartsWith("3.", version.GetProperty("etcdcluster").GetString(), StringComparison.Ordinal);
        Assert.Equal("true", health.GetProperty("health").GetString());
        // The proxy's own /health (on the metrics URL) reports a status and warnings; etcd's does not.
        Assert.False(health.TryGetProperty("warnings", out _));
    }

    [Fact]
    public async Task Metrics_stay_off_the_client_url_and_the_metrics_url_keeps_the_proxys_own_health()
    {
        using var proxied = GrpcClients.Http(plain.Pki);
        using var http = new HttpClient();

        using var metricsOnClientUrl = await proxied.GetAsync(plain.Shield.ClientUrl + "/metrics");
        using var versionOnMetricsUrl = await http.GetAsync(plain.Shield.MetricsUrl + "/version");
        var ownHealth = await http.GetFromJsonAsync<JsonElement>(plain.Shield.MetricsUrl + "/health");

        Assert.Equal(HttpStatusCode.NotFound, metricsOnClientUrl.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, versionOnMetricsUrl.StatusCode);
        Assert.True(ownHealth.TryGetProperty("warnings", out _));
    }

    [Fact]
    public async Task A_certificate_the_policy_in_force_no_longer_admits_gets_403_and_both_requests_are_audited()
    {
        var pki = new TestPki();
        var audit = Path.Combine(pki.Directory, "plain-audit.log");
        await using var proxy = await ReloadingShield.StartAsync(Admitting("prober"), ["--audit-log", audit], pki);
        var prober = pki.IssueClient("plain-prober", "prober");
        // One HTTP/2 connection for both requests: the second is judged on the connection admitted for the first.
        using var http = GrpcClients.Http(pki, prober);
        http.DefaultRequestVersion = HttpVersion.Version20;
        http.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;

        using var admitted = await http.GetAsync(proxy.Shield.ClientUrl + "/version");
        await proxy.ReplacePolicyAsync(Admitting("someone-else"));
        using var refused = await http.GetAsync(proxy.Shield.ClientUrl + "/version");
        var error = await refused.Content.ReadFromJsonAsync<JsonElement>();

        Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal(7, error.GetProperty("code").GetInt32());
        Assert.Contains("matches no identity of the policy", error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(error.GetProperty("error").GetString(), error.GetProperty("message").GetString());
        var records = await Eventually.HoldsAsync(
            () => Task.FromResult(ReadAudit(audit).Where(r => r.GetProperty("method").GetString() == "HTTP/version").ToList()),
            r => r.Count == 2,
            TimeSpan.FromSeconds(10));
        Assert.Equal(("prober", "allowed", "OK"), Outcome(records[0]));
        Assert.Equal((null, "denied", "PERMISSION_DENIED"), Outcome(records[1]));
        Assert.Contains("CN=prober", records[1].GetProperty("certificate").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_etcd_that_requires_client_certificates_is_reached_with_the_upstream_tls_of_the_grpc_channel()
    {
        using var pki = new TestPki();
        var upstreamClient = pki.IssueClient("plain-upstream-client", "etcdshield-upstream");
        await using var etcd = await EtcdProcess.StartAsync(new EtcdOptions { ClientTls = EtcdClientTls.From(pki, clientCertAuth: true) });
        await using var shield = await ShieldServer.StartAsync(pki, etcd.ClientUrl, encrypt: false, output: output, flags:
        [
            "--upstream-trusted-ca-file", pki.CaFile, "--upstream-cert-file", upstreamClient.CertFile, "--upstream-key-file", upstreamClient.KeyFile,
        ]);
        using var http = GrpcClients.Http(pki);

        var version = await http.GetFromJsonAsync<JsonElement>(shield.ClientUrl + "/version");

        Assert.StartsWith("3.", version.GetProperty("etcdserver").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_etcd_stopped_the_client_gets_503_in_etcds_error_shape()
    {
        // Its own etcd and proxy: this test stops the etcd.
        await using var etcd = await EtcdProcess.StartAsync();
        await using var shield = await ShieldServer.StartAsync(plain.Pki, etcd.ClientUrl, encrypt: false, output: output);
        using var http = GrpcClients.Http(plain.Pki);

        await etcd.StopAsync();
        using var response = await http.GetAsync(shield.ClientUrl + "/version");
        var error = await response.Content.ReadFromJsonAsync<JsonElement>();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(14, error.GetProperty("code").GetInt32());
        Assert.Equal("etcdshield: etcd is unreachable", error.GetProperty("error").GetString());
        Assert.Contains(shield.Logs.Entries, e => e.Is("EtcdShield.Gateway.UpstreamHttp", "UpstreamMemberUnreachable") && e.Message.Contains("/version", StringComparison.Ordinal));
        // One line of the proxy's own, not the forwarder's warning with its stack trace.
        Assert.DoesNotContain(shield.Logs.Entries, e => e.Category.StartsWith("Yarp", StringComparison.Ordinal) || e.Exception is not null);
    }

    [Fact]
    public async Task Without_the_flag_there_is_no_cors_header_not_even_etcds_own()
    {
        using var http = GrpcClients.Http(plain.Pki);

        using var actual = await http.SendAsync(WithOrigin(HttpMethod.Get, plain.Shield.ClientUrl + "/version", AllowedOrigin));
        using var preflight = await http.SendAsync(Preflight(plain.Shield.ClientUrl + "/version", AllowedOrigin));

        Assert.Equal(HttpStatusCode.OK, actual.StatusCode);
        Assert.Empty(CorsHeaders(actual));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, preflight.StatusCode);
        Assert.Empty(CorsHeaders(preflight));
    }

    [Theory]
    [InlineData("/version")]
    [InlineData("/v3/kv/range")]
    public async Task With_the_flag_an_allowed_origins_preflight_is_answered_with_etcds_methods_and_headers(string path)
    {
        using var http = GrpcClients.Http(cors.Pki);

        using var preflight = await http.SendAsync(Preflight(cors.Shield.ClientUrl + path, AllowedOrigin));

        Assert.Equal(HttpStatusCode.NoContent, preflight.StatusCode);
        Assert.Equal(AllowedOrigin, Single(preflight, "Access-Control-Allow-Origin"));
        Assert.Equal(["POST", "GET", "OPTIONS", "PUT", "DELETE"], Split(Single(preflight, "Access-Control-Allow-Methods")));
        Assert.Equal(["accept", "content-type", "authorization"], Split(Single(preflight, "Access-Control-Allow-Headers")));
    }

    [Fact]
    public async Task With_the_flag_an_allowed_origin_may_read_the_answer_and_another_origin_is_told_nothing()
    {
        using var http = GrpcClients.Http(cors.Pki);

        using var allowed = await http.SendAsync(WithOrigin(HttpMethod.Get, cors.Shield.ClientUrl + "/version", AllowedOrigin));
        using var other = await http.SendAsync(WithOrigin(HttpMethod.Get, cors.Shield.ClientUrl + "/version", "https://evil.example"));
        using var otherPreflight = await http.SendAsync(Preflight(cors.Shield.ClientUrl + "/version", "https://evil.example"));

        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(AllowedOrigin, Single(allowed, "Access-Control-Allow-Origin"));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        Assert.Empty(CorsHeaders(other));
        Assert.Empty(CorsHeaders(otherPreflight));
    }

    [Fact]
    public async Task With_the_flag_the_metrics_url_still_answers_no_origin()
    {
        using var http = new HttpClient();

        using var preflight = await http.SendAsync(Preflight(cors.Shield.MetricsUrl + "/health", AllowedOrigin));
        using var health = await http.SendAsync(WithOrigin(HttpMethod.Get, cors.Shield.MetricsUrl + "/health", AllowedOrigin));

        Assert.Empty(CorsHeaders(preflight));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Empty(CorsHeaders(health));
    }

    private static string Admitting(string commonName) => $$"""
        identities:
          - name: {{commonName}}
            match: { cn: {{commonName}} }
            methods: [Maintenance/Status]
        """;

    private static HttpRequestMessage WithOrigin(HttpMethod method, string url, string origin)
    {
        var request = new HttpRequestMessage(method, url);
        request.Headers.TryAddWithoutValidation("Origin", origin);
        return request;
    }

    private static HttpRequestMessage Preflight(string url, string origin)
    {
        var request = WithOrigin(HttpMethod.Options, url, origin);
        request.Headers.TryAddWithoutValidation("Access-Control-Request-Method", "POST");
        request.Headers.TryAddWithoutValidation("Access-Control-Request-Headers", "content-type,authorization");
        return request;
    }

    private static List<string> CorsHeaders(HttpResponseMessage response) =>
        [.. response.Headers.Concat(response.Content.Headers).Select(h => h.Key).Where(k => k.StartsWith("Access-Control-", StringComparison.OrdinalIgnoreCase))];

    private static string Single(HttpResponseMessage response, string header) =>
        response.Headers.TryGetValues(header, out var values) ? string.Join(",", values) : "";

    private static string[] Split(string value) => value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    private static (string? Identity, string? Outcome, string? Code) Outcome(JsonElement record) =>
        (record.GetProperty("identity").GetString(), record.GetProperty("outcome").GetString(), record.GetProperty("code").GetString());

    private static List<JsonElement> ReadAudit(string path)
    {
        if (!File.Exists(path))
        {
            return [];
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        var lines = new List<JsonElement>();
        while (reader.ReadLine() is { } line)
        {
            if (line.EndsWith('}'))
            {
                lines.Add(JsonDocument.Parse(line).RootElement.Clone());
            }
        }

        return lines;
    }
}
