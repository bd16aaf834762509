using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using EtcdShield.EndToEnd.Hostile;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Gateway;

/// <summary>
/// What a hostile or broken gateway client gets: bad JSON, bad base64, wrong field types, a body over
/// --max-request-bytes and a deeply nested body are refused with an etcd-style error body and nothing reaches
/// etcd; a key the policy forbids is 403 and audited under the gRPC method's name; a watch stream refused at once
/// answers with the stream's error chunk; a certificate no identity matches never gets past the handshake; a watch
/// whose grant a reload removes is cancelled and sees nothing written after; wrong methods and paths are 405 and
/// 404 as in etcd.
/// </summary>
public sealed class GatewayHostileTests(GatewayHostileTests.Fixture fixture) : IClassFixture<GatewayHostileTests.Fixture>
{
    private const int MaxRequestBytes = 4096;

    private static readonly TimeSpan StreamTimeout = TimeSpan.FromSeconds(10);

    private static string Policy(bool secrets) => $$"""
        identities:
          - name: gw-reader
            match: { cn: gw-reader }
            keys:
              - { prefix: /open/, permission: readwrite }
        {{(secrets ? "      - { prefix: /secret/, permission: read }" : "")}}
          - name: gw-monitor
            match: { cn: gw-monitor }
            methods: [Maintenance/Status]
        """;

    /// <summary>A proxy with a policy, an audit log and a small request limit in front of an etcd of its own, so etcd's revision shows whether anything reached it.</summary>
    public sealed class Fixture : IAsyncLifetime
    {
        private ReloadingShield? _proxy;

        public TestPki Pki { get; } = new();

        internal ReloadingShield Proxy => _proxy ?? throw new InvalidOperationException("Not started.");

        internal string AuditFile => Path.Combine(Pki.Directory, "gateway-audit.log");

        internal CertificatePaths Reader { get; private set; } = null!;

        /// <summary>May call Maintenance/Status and nothing else: no key at all.</summary>
        internal CertificatePaths Monitor { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Reader = Pki.IssueClient("gw-reader", "gw-reader");
            Monitor = Pki.IssueClient("gw-monitor", "gw-monitor");
            _proxy = await ReloadingShield.StartAsync(Policy(secrets: false), ["--audit-log", AuditFile, "--max-request-bytes", MaxRequestBytes.ToString(CultureInfo.InvariantCulture)], Pki);
        }

        public async Task DisposeAsync()
        {
            if (_proxy is not null)
            {
                // Disposes the PKI too.
                await _proxy.DisposeAsync();
            }
            else
            {
                Pki.Dispose();
            }
        }

        /// <summary>etcd's current revision, read around the proxy.</summary>
        internal async Task<long> RevisionAsync()
        {
            using var direct = GrpcChannels.ToEtcd(Proxy.Etcd);
            return (await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/") })).Header.Revision;
        }

        internal Task<IReadOnlyList<JsonElement>> AuditAsync(Func<JsonElement, bool> condition) =>
            Eventually.HoldsAsync(() => Task.FromResult<IReadOnlyList<JsonElement>>(ReadAudit()), lines => lines.Any(condition), TimeSpan.FromSeconds(10));

        private List<JsonElement> ReadAudit()
        {
            if (!File.Exists(AuditFile))
            {
                return [];
            }

            using var stream = new FileStream(AuditFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            var lines = new List<JsonElement>();
            while (reader.ReadLine() is { } line)
            {
                if (line.EndsWith('}'))
                {
                    using var document = JsonDocument.Parse(line);
                    lines.Add(document.RootElement.Clone());
                }
            }

            return lines;
        }
    }

    private static string B(string text) => GatewayScenario.B(text);

    [Theory]
    [InlineData("/v3/kv/put", """{"key":""", "truncated JSON")]
    [InlineData("/v3/kv/put", "put /open/bad please", "not JSON")]
    [InlineData("/v3/kv/put", """{"key":"L29wZW4vYmFk","value":"!!!!"}""", "a value that is not base64")]
    [InlineData("/v3/kv/put", """{"key":"L29wZW4vYmFk","value":"YQ"}""", "base64 without its padding")]
    [InlineData("/v3/kv/put", """{"key":"L29wZW4vYmFk","value":"YQ==","lease":"twelve"}""", "an int64 that is not a number")]
    [InlineData("/v3/kv/put", """{"key":"L29wZW4vYmFk","value":"YQ==","lease":1.5}""", "an int64 with a fraction")]
    [InlineData("/v3/kv/put", """{"key":"L29wZW4vYmFk","value":"YQ==","prev_kv":"yes"}""", "a string for a bool")]
    [InlineData("/v3/kv/put", """{"key":["L29wZW4vYmFk"],"value":"YQ=="}""", "an array for bytes")]
    [InlineData("/v3/kv/put", """{"key":12345,"value":"YQ=="}""", "a number for bytes")]
    [InlineData("/v3/kv/txn", """{"compare":[{"target":"SIDEWAYS","key":"L29wZW4vYmFk"}],"success":[{"request_put":{"key":"L29wZW4vYmFk","value":"YQ=="}}]}""", "an enum name that does not exist")]
    [InlineData("/v3/kv/txn", """{"compare":{"key":"L29wZW4vYmFk"},"success":[{"request_put":{"key":"L29wZW4vYmFk","value":"YQ=="}}]}""", "an object for a repeated field")]
    public async Task A_body_that_is_not_a_valid_request_is_400_with_an_etcd_error_and_nothing_reaches_etcd(string path, string body, string what)
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);
        var before = await fixture.RevisionAsync();

        var answer = await http.PostAsync(path, body);

        AssertEtcdError(answer, HttpStatusCode.BadRequest, 3, what);
        Assert.Equal(before, await fixture.RevisionAsync());
    }

    [Fact]
    public async Task A_deeply_nested_body_is_400_and_nothing_reaches_etcd()
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);
        const int Depth = 1500; // under the request limit, far over any sane nesting
        var body = $$"""{"key":"{{B("/open/deep")}}","value":"YQ==","ignored":{{new string('[', Depth)}}{{new string(']', Depth)}}}""";
        Assert.True(Encoding.UTF8.GetByteCount(body) < MaxRequestBytes);
        var before = await fixture.RevisionAsync();

        var answer = await http.PostAsync("/v3/kv/put", body, HttpVersion.Version20);

        AssertEtcdError(answer, HttpStatusCode.BadRequest, 3, "nesting " + Depth + " deep");
        Assert.Equal(before, await fixture.RevisionAsync());
    }

    /// <summary>
    /// Over --max-request-bytes as sent, the proxy answers as etcd itself would (its request-too-large error, InvalidArgument);
    /// within it as plaintext but over it once the value is sealed, the proxy's own ResourceExhausted (Encryption/RequestSizeTests
    /// for gRPC); a body of megabytes gets one of the two, never a 5xx. Nothing reaches etcd (whose own limit is the default 1.5 MiB).
    /// </summary>
    [Theory]
    [InlineData(8192, 1, HttpStatusCode.BadRequest, 3, "etcdserver: request is too large")]
    [InlineData(8192, 2, HttpStatusCode.BadRequest, 3, "etcdserver: request is too large")]
    [InlineData(3990, 1, HttpStatusCode.TooManyRequests, 8, "too large after encryption")]
    [InlineData(3990, 2, HttpStatusCode.TooManyRequests, 8, "too large after encryption")]
    public async Task A_request_over_max_request_bytes_is_refused_with_etcds_answer_and_nothing_reaches_etcd(int valueLength, int version, HttpStatusCode status, int code, string message)
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);
        var body = $$"""{"key":"{{B("/open/big")}}","value":"{{B(new string('v', valueLength))}}"}""";
        var before = await fixture.RevisionAsync();

        var answer = await http.PostAsync("/v3/kv/put", body, version == 2 ? HttpVersion.Version20 : HttpVersion.Version11);

        AssertEtcdError(answer, status, code, $"a {valueLength}-byte value");
        Assert.Contains(message, answer.Json().GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("vvvv", answer.Body, StringComparison.Ordinal);
        Assert.Equal(before, await fixture.RevisionAsync());
    }

    /// <summary>
    /// Over HTTP/2 the refusal reaches the client however much of the body is still unsent; over HTTP/1.1 a server that
    /// answers before reading the whole body may close the connection under the client's upload, which is as good as
    /// an answer. Either way nothing reaches etcd and the proxy goes on serving.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task A_body_of_megabytes_is_refused_and_nothing_reaches_etcd(int version)
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);
        var body = $$"""{"key":"{{B("/open/huge")}}","value":"{{B(new string('h', 3 * 1024 * 1024))}}"}""";
        var before = await fixture.RevisionAsync();

        GatewayAnswer? answer = null;
        try
        {
            answer = await http.PostAsync("/v3/kv/put", body, version == 2 ? HttpVersion.Version20 : HttpVersion.Version11);
        }
        catch (HttpRequestException) when (version == 1)
        {
            // The connection was closed under the upload: refused without an answer.
        }

        if (answer is not null || version == 2)
        {
            Assert.NotNull(answer);
            var (status, code) = answer.Status == HttpStatusCode.TooManyRequests ? (HttpStatusCode.TooManyRequests, 8) : (HttpStatusCode.BadRequest, 3);
            AssertEtcdError(answer, status, code, "a 4 MiB body");
        }

        Assert.Equal(before, await fixture.RevisionAsync());
        using var after = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);
        Assert.Equal(HttpStatusCode.OK, (await after.PostAsync("/v3/kv/range", $$"""{"key":"{{B("/open/huge")}}"}""", HttpVersion.Version11)).Status);
    }

    [Fact]
    public async Task A_key_the_policy_forbids_is_403_with_code_7_nothing_reaches_etcd_and_the_denial_is_audited_as_the_grpc_method()
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki, fixture.Reader);
        var before = await fixture.RevisionAsync();

        var put = await http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/secret/forbidden")}}","value":"{{B("must not be written")}}"}""");
        var range = await http.PostAsync("/v3/kv/range", $$"""{"key":"{{B("/secret/")}}","range_end":"{{B("/secret0")}}"}""", HttpVersion.Version20);
        var allowed = await http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/allowed")}}","value":"{{B("written")}}"}""");

        AssertEtcdError(put, HttpStatusCode.Forbidden, 7, "a put outside the grants");
        AssertEtcdError(range, HttpStatusCode.Forbidden, 7, "a range outside the grants");
        Assert.Contains("permission denied", put.Json().GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("must not be written", put.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, allowed.Status);
        Assert.Equal(before + 1, await fixture.RevisionAsync());
        await fixture.AuditAsync(l => Is(l, "gw-reader", "KV/Put", "denied") && l.GetProperty("code").GetString() == "PERMISSION_DENIED");
        await fixture.AuditAsync(l => Is(l, "gw-reader", "KV/Range", "denied"));
        await fixture.AuditAsync(l => Is(l, "gw-reader", "KV/Put", "allowed") && l.GetProperty("code").GetString() == "OK");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task A_watch_stream_refused_before_its_first_message_is_the_streams_error_chunk_with_its_http_status_as_etcd_writes_it(int version)
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki, fixture.Monitor);

        using var watch = await http.OpenStreamAsync("/v3/watch", $$$"""{"create_request":{"key":"{{{B("/open/")}}}"}}""", version == 2 ? HttpVersion.Version20 : HttpVersion.Version11);
        var chunk = await watch.ReadLineAsync(StreamTimeout);

        // grpc-gateway v1 (etcd 3.4 and 3.5): an error before any message sets the answer's status from it, and
        // the body is the stream's error chunk, not the unary error body.
        Assert.True(watch.Status == HttpStatusCode.Forbidden, $"{(int)watch.Status}: {chunk}");
        Assert.Equal("application/json", watch.MediaType);
        Assert.NotNull(chunk);
        using var document = JsonDocument.Parse(chunk);
        var error = document.RootElement.GetProperty("error");
        Assert.Equal(["error"], document.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(["grpc_code", "http_code", "message", "http_status"], error.EnumerateObject().Select(p => p.Name));
        Assert.Equal(7, error.GetProperty("grpc_code").GetInt32());
        Assert.Equal(403, error.GetProperty("http_code").GetInt32());
        Assert.Equal("Forbidden", error.GetProperty("http_status").GetString());
        Assert.Contains("permission denied", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Null(await watch.ReadLineAsync(StreamTimeout));
        await fixture.AuditAsync(l => Is(l, "gw-monitor", "Watch/Watch", "denied"));
    }

    [Theory]
    [InlineData("/v3/maintenance/status", "{}", "Maintenance/Status")]
    [InlineData("/v3/maintenance/snapshot", "{}", "Maintenance/Snapshot")]
    [InlineData("/v3/auth/user/add", """{"name":"intruder","password":"x"}""", "Auth/UserAdd")]
    [InlineData("/v3/lease/grant", """{"TTL":60}""", "Lease/LeaseGrant")]
    [InlineData("/v3/cluster/member/list", "{}", "Cluster/MemberList")]
    public async Task A_method_the_policy_does_not_grant_is_403_and_audited_under_its_grpc_name(string path, string body, string method)
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki, fixture.Reader);

        var answer = await http.PostAsync(path, body);

        // Snapshot is a stream: refused before its first message, it answers with the stream's error chunk.
        if (path.EndsWith("/snapshot", StringComparison.Ordinal))
        {
            Assert.True(answer.Status == HttpStatusCode.Forbidden, answer.ToString());
            Assert.Equal(7, answer.Json().GetProperty("error").GetProperty("grpc_code").GetInt32());
        }
        else
        {
            AssertEtcdError(answer, HttpStatusCode.Forbidden, 7, path);
        }

        await fixture.AuditAsync(l => Is(l, "gw-reader", method, "denied"));
    }

    [Fact]
    public async Task An_error_message_is_escaped_as_go_escapes_it()
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki, fixture.Reader);

        var put = await http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/secret/<b>&c")}}","value":"YQ=="}""");

        AssertEtcdError(put, HttpStatusCode.Forbidden, 7, "a put outside the grants");
        Assert.Contains("identity \"gw-reader\" may not write key \"/secret/<b>&c\"", put.Json().GetProperty("message").GetString(), StringComparison.Ordinal);
        // encoding/json under jsonpb: a quote as \", and <, > and & as \u003c, \u003e and \u0026.
        Assert.Contains("identity \\\"gw-reader\\\" may not write key \\\"/secret/\\u003cb\\u003e\\u0026c\\\"", put.Body, StringComparison.Ordinal);
        Assert.DoesNotContain('<', put.Body);
        Assert.DoesNotContain('&', put.Body);
    }

    [Theory]
    [InlineData("1n", HttpStatusCode.GatewayTimeout, 4)] // gone before the request can leave
    [InlineData("soon", HttpStatusCode.BadRequest, 3)]
    [InlineData("99999999999S", HttpStatusCode.BadRequest, 3)] // more than gRPC's eight digits
    public async Task A_grpc_timeout_header_is_the_calls_deadline_and_a_bad_one_is_refused(string timeout, HttpStatusCode status, int code)
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);
        var before = await fixture.RevisionAsync();

        var answer = await http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/deadline")}}","value":"YQ=="}""", headers: new Dictionary<string, string> { ["Grpc-Timeout"] = timeout });

        AssertEtcdError(answer, status, code, "Grpc-Timeout: " + timeout);
        if (status == HttpStatusCode.BadRequest)
        {
            // Refused with the headers; a deadline, by contrast, may pass while etcd already applies the put.
            Assert.Equal(before, await fixture.RevisionAsync());
        }
    }

    [Fact]
    public async Task A_watch_whose_grpc_timeout_has_passed_answers_with_the_streams_deadline_error()
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);

        var answer = await http.PostAsync("/v3/watch", $$$"""{"create_request":{"key":"{{{B("/open/")}}}"}}""", headers: new Dictionary<string, string> { ["Grpc-Timeout"] = "1n" });

        Assert.True(answer.Status == HttpStatusCode.GatewayTimeout, answer.ToString());
        using var document = JsonDocument.Parse(answer.Body);
        var error = document.RootElement.GetProperty("error");
        Assert.Equal(4, error.GetProperty("grpc_code").GetInt32());
        Assert.Equal(504, error.GetProperty("http_code").GetInt32());
        Assert.Equal("Gateway Timeout", error.GetProperty("http_status").GetString());
    }

    [Fact]
    public async Task A_binary_metadata_header_that_is_not_base64_is_400_and_one_that_is_goes_through()
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);
        var before = await fixture.RevisionAsync();

        var bad = await http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/bin")}}","value":"YQ=="}""", headers: new Dictionary<string, string> { ["Grpc-Metadata-Trace-Bin"] = "!!not base64!!" });
        AssertEtcdError(bad, HttpStatusCode.BadRequest, 3, "a -bin header that is not base64");
        Assert.Equal(before, await fixture.RevisionAsync());

        var good = await http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/bin")}}","value":"YQ=="}""", headers: new Dictionary<string, string> { ["Grpc-Metadata-Trace-Bin"] = "AAEC" });
        Assert.True(good.Status == HttpStatusCode.OK, good.ToString());
    }

    [Theory]
    [InlineData("bogus")]
    [InlineData("gzip")]
    public async Task A_metadata_header_naming_a_request_compression_cannot_steer_the_proxys_channel_to_etcd(string encoding)
    {
        // Grpc.Net.Client reads grpc-internal-encoding-request as the codec for the request it sends: a client
        // must not choose how (or whether) the proxy's own call to etcd is encoded.
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);

        var put = await http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/codec")}}","value":"YQ=="}""", headers: new Dictionary<string, string> { ["Grpc-Metadata-Grpc-Internal-Encoding-Request"] = encoding });

        Assert.True(put.Status == HttpStatusCode.OK, put.ToString());
    }

    [Fact]
    public async Task A_certificate_that_no_identity_matches_is_refused_in_the_handshake_and_writes_nothing()
    {
        var stranger = fixture.Pki.IssueClient("gw-stranger", "gw-stranger");
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki, stranger);
        var before = await fixture.RevisionAsync();

        await Assert.ThrowsAsync<HttpRequestException>(() => http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/stranger")}}","value":"YQ=="}"""));
        await Assert.ThrowsAsync<HttpRequestException>(() => http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/stranger")}}","value":"YQ=="}""", HttpVersion.Version20));

        Assert.Equal(before, await fixture.RevisionAsync());
    }

    [Theory]
    [InlineData("GET", "/v3/kv/range", HttpStatusCode.MethodNotAllowed)]
    [InlineData("PUT", "/v3/kv/put", HttpStatusCode.MethodNotAllowed)]
    [InlineData("POST", "/v3/kv/nothing", HttpStatusCode.NotFound)]
    [InlineData("POST", "/v3/no/such/service", HttpStatusCode.NotFound)]
    [InlineData("POST", "/v3alpha/kv/range", HttpStatusCode.NotFound)]
    [InlineData("POST", "/v3alpha/kv/put", HttpStatusCode.NotFound)]
    [InlineData("POST", "/V3/kv/put", HttpStatusCode.NotFound)] // etcd's routes are case-sensitive
    [InlineData("POST", "/v3/KV/put", HttpStatusCode.NotFound)]
    [InlineData("POST", "/v3/kv/PUT", HttpStatusCode.NotFound)]
    [InlineData("POST", "/v3beta/KV/put", HttpStatusCode.NotFound)]
    [InlineData("POST", "/v3/kv/put/", HttpStatusCode.NotFound)]
    [InlineData("POST", "/v3/kv/put.json", HttpStatusCode.NotFound)]
    [InlineData("POST", "/v3/kv/put/extra", HttpStatusCode.NotFound)]
    public async Task Wrong_methods_are_405_and_unknown_paths_404_as_in_etcd(string method, string path, HttpStatusCode expected)
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);
        var before = await fixture.RevisionAsync();
        var body = $$"""{"key":"{{B("/open/wrong-path")}}","value":"YQ=="}""";

        var overHttp1 = await http.PostAsync(path, body, HttpVersion.Version11, method: new HttpMethod(method));
        var overHttp2 = await http.PostAsync(path, body, HttpVersion.Version20, method: new HttpMethod(method));

        Assert.Equal(expected, overHttp1.Status);
        Assert.Equal(expected, overHttp2.Status);
        Assert.Equal(before, await fixture.RevisionAsync());
    }

    [Fact]
    public async Task A_chunked_gateway_watch_whose_grant_a_reload_removes_is_cancelled_and_gets_nothing_written_after()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy(secrets: true));
        var watcher = proxy.Pki.IssueClient("gw-watcher", "gw-reader");
        using var http = new GatewayHttp(proxy.Shield.ClientUrl, proxy.Pki, watcher);
        using var admin = new GatewayHttp(proxy.Shield.ClientUrl, proxy.Pki);

        // One stream, two watches: the body is a sequence of requests, as etcd's gateway reads it.
        using var watch = await http.OpenStreamAsync(
            "/v3/watch",
            $$$"""{"create_request":{"key":"{{{B("/secret/")}}}","range_end":"{{{B("/secret0")}}}"}}{"create_request":{"key":"{{{B("/open/")}}}","range_end":"{{{B("/open0")}}}","watch_id":"77"}}""",
            HttpVersion.Version11);
        Assert.Equal(HttpStatusCode.OK, watch.Status);
        Assert.Equal(HttpVersion.Version11, watch.Version);
        Assert.True(watch.Chunked, "an HTTP/1.1 watch is answered chunked");
        static bool Created(string line, bool named) =>
            line.Contains("\"created\":true", StringComparison.Ordinal) && line.Contains("\"watch_id\":\"77\"", StringComparison.Ordinal) == named;
        await watch.ReadUntilAsync(_ => watch.Lines.Any(l => Created(l, named: false)) && watch.Lines.Any(l => Created(l, named: true)), StreamTimeout);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/secret/before")}}","value":"{{B("seen while granted")}}"}""")).Status);
        await watch.ReadUntilAsync(line => line.Contains(B("/secret/before"), StringComparison.Ordinal), StreamTimeout);

        await proxy.ReplacePolicyAsync(Policy(secrets: false));

        var cancelled = await watch.ReadUntilAsync(line => line.Contains("\"canceled\":true", StringComparison.Ordinal), StreamTimeout);
        Assert.Contains("PermissionDenied", cancelled, StringComparison.Ordinal);
        Assert.DoesNotContain("\"watch_id\":\"77\"", cancelled, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/secret/after")}}","value":"{{B("must not arrive")}}"}""")).Status);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/after")}}","value":"{{B("still watched")}}"}""")).Status);
        await watch.ReadUntilAsync(line => line.Contains(B("/open/after"), StringComparison.Ordinal), StreamTimeout);
        Assert.DoesNotContain(watch.Lines, line => line.Contains(B("/secret/after"), StringComparison.Ordinal) || line.Contains(B("must not arrive"), StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_gateway_watch_whose_last_key_grant_a_reload_removes_ends_with_the_streams_error_chunk()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy(secrets: true));
        var watcher = proxy.Pki.IssueClient("gw-watcher-bare", "gw-reader");
        using var http = new GatewayHttp(proxy.Shield.ClientUrl, proxy.Pki, watcher);
        using var watch = await http.OpenStreamAsync("/v3/watch", $$$"""{"create_request":{"key":"{{{B("/open/")}}}","range_end":"{{{B("/open0")}}}"}}""", HttpVersion.Version11);
        await watch.ReadUntilAsync(line => line.Contains("\"created\":true", StringComparison.Ordinal), StreamTimeout);

        await proxy.ReplacePolicyAsync("""
            identities:
              - name: gw-reader
                match: { cn: gw-reader }
                methods: [Maintenance/Status]
            """);

        // The answer's status went out with the first message; the error is the stream's last line, then its end.
        var last = await watch.ReadUntilAsync(line => line.StartsWith("{\"error\"", StringComparison.Ordinal), StreamTimeout);
        Assert.Equal(HttpStatusCode.OK, watch.Status);
        using var document = JsonDocument.Parse(last);
        var error = document.RootElement.GetProperty("error");
        Assert.Equal(["grpc_code", "http_code", "message", "http_status"], error.EnumerateObject().Select(p => p.Name));
        Assert.Equal(7, error.GetProperty("grpc_code").GetInt32());
        Assert.Equal(403, error.GetProperty("http_code").GetInt32());
        Assert.Equal("Forbidden", error.GetProperty("http_status").GetString());
        Assert.Contains("identity \"gw-reader\"", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Null(await watch.ReadLineAsync(StreamTimeout));
    }

    [Fact]
    public async Task A_gateway_watch_of_a_certificate_revoked_while_it_runs_ends_with_the_error_chunk_and_sees_nothing_after()
    {
        await using var proxy = await ReloadingShield.StartAsync(Policy(secrets: false));
        var stolen = proxy.Pki.IssueClient("gw-stolen", "gw-reader");
        using var http = new GatewayHttp(proxy.Shield.ClientUrl, proxy.Pki, stolen);
        using var admin = new GatewayHttp(proxy.Shield.ClientUrl, proxy.Pki);
        using var watch = await http.OpenStreamAsync("/v3/watch", $$$"""{"create_request":{"key":"{{{B("/open/")}}}","range_end":"{{{B("/open0")}}}"}}""", HttpVersion.Version20);
        await watch.ReadUntilAsync(line => line.Contains("\"created\":true", StringComparison.Ordinal), StreamTimeout);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/before")}}","value":"{{B("seen before the revocation")}}"}""")).Status);
        await watch.ReadUntilAsync(line => line.Contains(B("/open/before"), StringComparison.Ordinal), StreamTimeout);

        proxy.Revoke(stolen);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/after")}}","value":"{{B("must not arrive")}}"}""")).Status);

        var last = await watch.ReadUntilAsync(line => line.StartsWith("{\"error\"", StringComparison.Ordinal), StreamTimeout);
        using var document = JsonDocument.Parse(last);
        var error = document.RootElement.GetProperty("error");
        Assert.Equal(7, error.GetProperty("grpc_code").GetInt32());
        Assert.Equal(403, error.GetProperty("http_code").GetInt32());
        Assert.Contains("revoked", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Null(await watch.ReadLineAsync(StreamTimeout));
        Assert.DoesNotContain(watch.Lines, line => line.Contains(B("/open/after"), StringComparison.Ordinal));
    }

    private static bool Is(JsonElement line, string identity, string method, string outcome) =>
        line.GetProperty("identity").GetString() == identity
        && line.GetProperty("method").GetString() == method
        && line.GetProperty("outcome").GetString() == outcome;

    /// <summary>The error body etcd 3.4.24+/3.5 writes: <c>{"error":"…","code":N,"message":"…"}</c>, error and message alike.</summary>
    /// <summary>
    /// Someone with raw write access to etcd plants plaintext, or copies a genuine envelope under another key: the
    /// gateway serves neither, on a range and on a watch replaying the write, and never the value itself.
    /// </summary>
    [Fact]
    public async Task A_value_planted_or_moved_in_etcd_directly_is_data_loss_through_the_gateway_on_range_and_watch()
    {
        using var http = new GatewayHttp(fixture.Proxy.Shield.ClientUrl, fixture.Pki);
        using var direct = GrpcChannels.ToEtcd(fixture.Proxy.Etcd);
        var kv = new KV.KVClient(direct);
        var put = await http.PostAsync("/v3/kv/put", $$"""{"key":"{{B("/open/tamper/genuine")}}","value":"{{B("the-secret")}}"}""");
        Assert.True(put.Status == HttpStatusCode.OK, put.ToString());
        var envelope = (await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/open/tamper/genuine") })).Kvs[0].Value;
        var moved = await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("/open/tamper/moved"), Value = envelope });
        await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("/open/tamper/planted"), Value = ByteString.CopyFromUtf8("planted-plaintext") });

        foreach (var key in new[] { "/open/tamper/moved", "/open/tamper/planted" })
        {
            var answer = await http.PostAsync("/v3/kv/range", $$"""{"key":"{{B(key)}}"}""");
            AssertEtcdError(answer, HttpStatusCode.InternalServerError, 15, key);
            Assert.DoesNotContain(B("the-secret"), answer.Body, StringComparison.Ordinal);
            Assert.DoesNotContain(B("planted-plaintext"), answer.Body, StringComparison.Ordinal);
        }

        var start = moved.Header.Revision.ToString(CultureInfo.InvariantCulture);
        using var watch = await http.OpenStreamAsync("/v3/watch", $$$"""{"create_request":{"key":"{{{B("/open/tamper/moved")}}}","start_revision":"{{{start}}}"}}""");
        var ended = await watch.ReadUntilAsync(line => line.Contains("\"error\"", StringComparison.Ordinal), StreamTimeout);
        Assert.Contains("\"grpc_code\":15", ended, StringComparison.Ordinal);
        Assert.DoesNotContain(B("the-secret"), string.Join("\n", watch.Lines), StringComparison.Ordinal);
    }

    private static void AssertEtcdError(GatewayAnswer answer, HttpStatusCode status, int code, string what)
    {
        Assert.True(answer.Status == status, $"{what}: expected {(int)status}, got {answer}");
        Assert.True(answer.MediaType == "application/json", $"{what}: {answer}");
        var error = answer.Json();
        Assert.True(
            error.EnumerateObject().Select(p => p.Name).SequenceEqual(["error", "code", "message"]),
            $"{what}: the error body is not etcd's {{\"error\",\"code\",\"message\"}}: {answer.Body}");
        Assert.Equal(code, error.GetProperty("code").GetInt32());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("error").GetString()), answer.Body);
        Assert.Equal(error.GetProperty("error").GetString(), error.GetProperty("message").GetString());
    }
}
