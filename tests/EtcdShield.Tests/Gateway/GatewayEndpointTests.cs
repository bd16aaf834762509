using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using EtcdShield.Configuration;
using EtcdShield.Gateway;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Tests.Relay;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

using static EtcdShield.Tests.Gateway.GatewayCalls;

namespace EtcdShield.Tests.Gateway;

/// <summary>
/// The gateway in front of the relay and an in-memory etcd: JSON in, the relay's one path, etcd's gateway JSON out;
/// refusals in the gateway's error shapes before anything reaches etcd.
/// </summary>
public sealed class GatewayEndpointTests : IDisposable
{
    private readonly RelayBed _bed = new(methods: "[Maintenance/Status, Lease/LeaseKeepAlive]");
    private readonly GatewayEndpoint _gateway;

    public GatewayEndpointTests()
    {
        _bed.Etcd.OnEvery("Maintenance/Status", _ => new StatusResponse { Header = new ResponseHeader { Revision = 1 }, Version = "3.4.23" });
        _gateway = GatewayCalls.Endpoint(_bed);
    }

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task A_put_is_relayed_to_etcd_and_answered_in_etcds_gateway_json()
    {
        var (status, body, http) = await PostAsync("/v3/kv/put", $$"""{"key":"{{B64("/app/a")}}","value":"{{B64("v1")}}","prev_kv":true}""");

        Assert.Equal(200, status);
        Assert.Equal("application/json", http.Response.ContentType);
        Assert.StartsWith("""{"header":{""", body, StringComparison.Ordinal);
        var put = Assert.Single(_bed.Etcd.SentTo<PutRequest>("KV/Put"));
        Assert.Equal(("/app/a", "v1", true), (put.Key.ToStringUtf8(), put.Value.ToStringUtf8(), put.PrevKv));
        Assert.Equal("OK", _bed.LastCode("KV/Put"));
    }

    [Fact]
    public async Task A_range_answer_carries_the_values_etcd_returned()
    {
        await PostAsync("/v3/kv/put", $$"""{"key":"{{B64("/app/a")}}","value":"{{B64("v1")}}"}""");

        var (status, body, _) = await PostAsync("/v3beta/kv/range", $$"""{"key":"{{B64("/app/a")}}"}""");

        Assert.Equal(200, status);
        var kv = JsonDocument.Parse(body).RootElement.GetProperty("kvs")[0];
        Assert.Equal(B64("v1"), kv.GetProperty("value").GetString());
        Assert.Equal("1", kv.GetProperty("version").GetString());
    }

    [Fact]
    public async Task A_request_the_policy_forbids_is_403_in_etcds_error_shape_and_never_reaches_etcd()
    {
        var (status, body, _) = await PostAsync("/v3/kv/put", $$"""{"key":"{{B64("/secret/a")}}","value":"{{B64("x")}}"}""");

        Assert.Equal(403, status);
        var error = JsonDocument.Parse(body).RootElement;
        Assert.Equal(7, error.GetProperty("code").GetInt32());
        Assert.Equal(error.GetProperty("error").GetString(), error.GetProperty("message").GetString());
        Assert.Empty(_bed.Etcd.Requests);
        Assert.Equal("PERMISSION_DENIED", _bed.LastCode("KV/Put"));
    }

    [Theory]
    [InlineData("{\"key\":")]
    [InlineData("{\"key\":\"not base64!\"}")]
    [InlineData("{\"key\":123}")]
    [InlineData("[1,2]")]
    public async Task A_body_that_is_not_a_request_is_400_and_never_reaches_etcd(string json)
    {
        var (status, body, _) = await PostAsync("/v3/kv/put", json);

        Assert.Equal(400, status);
        Assert.Equal(3, JsonDocument.Parse(body).RootElement.GetProperty("code").GetInt32());
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_request_larger_than_grpc_accepts_is_429_and_never_reaches_etcd()
    {
        var value = new string('A', 2 * ShieldOptions.MaxReceiveMessageBytes(1024));

        var (status, body, _) = await PostAsync("/v3/kv/put", $$"""{"key":"{{B64("/app/big")}}","value":"{{value}}"}""");

        Assert.Equal(429, status);
        Assert.Equal(8, JsonDocument.Parse(body).RootElement.GetProperty("code").GetInt32());
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task An_empty_body_is_an_empty_request()
    {
        var (status, _, _) = await PostAsync("/v3/maintenance/status", "");

        Assert.Equal(200, status);
        Assert.Single(_bed.Etcd.SentTo<StatusRequest>("Maintenance/Status"));
    }

    [Fact]
    public async Task Authorization_grpc_metadata_and_trace_context_headers_reach_etcd_as_metadata()
    {
        var (status, _, _) = await PostAsync("/v3/maintenance/status", "{}", http =>
        {
            http.Request.Headers.Authorization = "token-1";
            http.Request.Headers["Grpc-Metadata-Hasleader"] = "true";
            http.Request.Headers["Traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
            http.Request.Headers["X-Other"] = "not forwarded";
        });

        Assert.Equal(200, status);
        var headers = Assert.Single(_bed.Etcd.Requests).Headers!;
        Assert.Equal("token-1", headers.GetValue("authorization"));
        Assert.Equal("true", headers.GetValue("hasleader"));
        Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", headers.GetValue("traceparent"));
        Assert.Null(headers.Get("x-other"));
    }

    [Theory]
    [InlineData("/v3/kv/nothing", 404, 5)]
    [InlineData("/v3alpha/kv/range", 404, 5)]
    public async Task A_path_etcds_gateway_does_not_serve_is_404(string path, int http, int code)
    {
        var (status, body, _) = await PostAsync(path, "{}");

        Assert.Equal(http, status);
        Assert.Equal(code, JsonDocument.Parse(body).RootElement.GetProperty("code").GetInt32());
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_browser_request_from_an_origin_not_allowed_is_refused_before_it_reaches_etcd()
    {
        // A cross-site text/plain POST needs no preflight, and the browser would present its user's client certificate.
        var (status, body, _) = await PostAsync("/v3/kv/put", $$"""{"key":"{{B64("/app/a")}}","value":"{{B64("x")}}"}""", h =>
        {
            h.Request.Headers.Origin = "https://evil.example";
            h.Request.ContentType = "text/plain";
        });

        Assert.Equal(403, status);
        Assert.Contains("https://evil.example", body, StringComparison.Ordinal);
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_browser_request_from_an_allowed_origin_is_served()
    {
        var gateway = GatewayCalls.Endpoint(_bed, new ShieldOptions { CorsAllowedOrigins = ["https://ui.example"] });
        var http = _bed.HttpContext();
        http.Request.Method = "POST";
        http.Request.Path = "/v3/maintenance/status";
        http.Request.Headers.Origin = "https://ui.example";
        http.Response.Body = new MemoryStream();

        await gateway.HandleAsync(http);

        Assert.Equal(200, http.Response.StatusCode);
    }

    [Fact]
    public async Task A_get_of_a_gateway_route_is_405()
    {
        var (status, _, http) = await SendAsync("GET", "/v3/kv/range", "", null);

        Assert.Equal(405, status);
        Assert.Equal("POST", http.Response.Headers.Allow.ToString());
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_grpc_call_to_a_gateway_path_is_unimplemented()
    {
        var (status, _, http) = await PostAsync("/v3/kv/range", "", h => h.Request.ContentType = "application/grpc");

        Assert.Equal(200, status);
        Assert.Equal("12", http.Response.Headers["grpc-status"].ToString());
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_deadline_passing_before_the_body_arrives_is_504_in_etcds_error_shape()
    {
        var http = _bed.HttpContext();
        http.Request.Method = "POST";
        http.Request.Path = "/v3/kv/put";
        http.Request.Headers["Grpc-Timeout"] = "1n";
        http.Request.Body = new System.IO.Pipelines.Pipe().Reader.AsStream();
        var response = new MemoryStream();
        http.Response.Body = response;

        await _gateway.HandleAsync(http);

        Assert.Equal(504, http.Response.StatusCode);
        Assert.Equal(4, JsonDocument.Parse(response.ToArray()).RootElement.GetProperty("code").GetInt32());
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_malformed_grpc_timeout_is_400()
    {
        var (status, _, _) = await PostAsync("/v3/maintenance/status", "{}", h => h.Request.Headers["Grpc-Timeout"] = "soon");

        Assert.Equal(400, status);
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_watch_streams_each_answer_as_a_result_line_and_the_end_of_the_body_half_closes_it()
    {
        var etcd = _bed.Etcd.NextStream("Watch/Watch");
        using var call = new StreamingCall(_bed.HttpContext(), "/v3/watch");
        var handling = _gateway.HandleAsync(call.Http);

        await call.SendAsync($$$"""{"create_request":{"key":"{{{B64("/app/")}}}","range_end":"{{{B64("/app0")}}}"}}""");
        var create = (WatchRequest)await etcd.Requests.ReadAsync();
        Assert.Equal("/app/", create.CreateRequest.Key.ToStringUtf8());
        etcd.Respond(new WatchResponse { Header = new ResponseHeader { Revision = 5 }, Created = true });
        etcd.Respond(new WatchResponse
        {
            Header = new ResponseHeader { Revision = 6 },
            Events = { new Event { Kv = new KeyValue { Key = ByteString.CopyFromUtf8("/app/x"), Value = ByteString.CopyFromUtf8("v"), ModRevision = 6, CreateRevision = 6, Version = 1 } } },
        });

        Assert.Equal("""{"result":{"header":{"revision":"5"},"created":true}}""", await call.ReadLineAsync());
        Assert.Equal(
            $$$"""{"result":{"header":{"revision":"6"},"events":[{"kv":{"key":"{{{B64("/app/x")}}}","create_revision":"6","mod_revision":"6","version":"1","value":"{{{B64("v")}}}"}}]}}""",
            await call.ReadLineAsync());

        await call.EndBodyAsync();
        await etcd.Requests.Completion;
        etcd.Complete();
        await handling;
        Assert.Equal(200, call.Http.Response.StatusCode);
    }

    [Fact]
    public async Task A_stream_failing_after_its_first_answer_ends_with_a_stream_error_message()
    {
        var etcd = _bed.Etcd.NextStream("Watch/Watch");
        using var call = new StreamingCall(_bed.HttpContext(), "/v3/watch");
        var handling = _gateway.HandleAsync(call.Http);
        await call.SendAsync($$$"""{"create_request":{"key":"{{{B64("/app/")}}}"}}""");
        await etcd.Requests.ReadAsync();
        etcd.Respond(new WatchResponse { Created = true });
        await call.ReadLineAsync();

        etcd.Fail(StatusCode.Unavailable, "etcdserver: no leader");
        await handling;

        Assert.Equal(
            """{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}""",
            await call.ReadRestAsync());
    }

    [Fact]
    public async Task A_bad_message_in_the_middle_of_a_stream_ends_it_with_invalid_argument_and_is_not_forwarded()
    {
        var etcd = _bed.Etcd.NextStream("Watch/Watch");
        using var call = new StreamingCall(_bed.HttpContext(), "/v3/watch");
        var handling = _gateway.HandleAsync(call.Http);
        await call.SendAsync($$$"""{"create_request":{"key":"{{{B64("/app/")}}}"}}""");
        await etcd.Requests.ReadAsync();
        etcd.Respond(new WatchResponse { Created = true });
        await call.ReadLineAsync();

        await call.SendAsync("""{"create_request":{"key":"%%%"}}""");
        await handling;

        Assert.Contains("\"grpc_code\":3", await call.ReadRestAsync(), StringComparison.Ordinal);
        Assert.False(etcd.Requests.TryRead(out _));
    }

    [Fact]
    public async Task A_stream_refused_before_its_first_answer_gets_the_refusal_as_its_http_status()
    {
        using var call = new StreamingCall(_bed.HttpContext(), "/v3/maintenance/snapshot");
        await call.EndBodyAsync();

        await _gateway.HandleAsync(call.Http);

        Assert.Equal(403, call.Http.Response.StatusCode);
        Assert.Contains("\"grpc_code\":7", await call.ReadRestAsync(), StringComparison.Ordinal);
        Assert.Empty(_bed.Etcd.Requests);
    }

    private Task<(int Status, string Body, DefaultHttpContext Http)> PostAsync(string path, string body, Action<DefaultHttpContext>? configure = null) =>
        SendAsync("POST", path, body, configure);

    private Task<(int Status, string Body, DefaultHttpContext Http)> SendAsync(string method, string path, string body, Action<DefaultHttpContext>? configure) =>
        GatewayCalls.SendAsync(_gateway, _bed, method, path, body, configure);

    /// <summary>A streaming request whose body the test writes while the gateway answers, line by line.</summary>
    private sealed class StreamingCall : IDisposable
    {
        private readonly Pipe _request = new();
        private readonly Pipe _response = new();
        private readonly StreamReader _lines;

        public StreamingCall(DefaultHttpContext http, string path)
        {
            Http = http;
            http.Request.Method = "POST";
            http.Request.Path = path;
            http.Request.Body = _request.Reader.AsStream();
            http.Response.Body = _response.Writer.AsStream();
            _lines = new StreamReader(_response.Reader.AsStream(), Encoding.UTF8);
        }

        public DefaultHttpContext Http { get; }

        public void Dispose() => _lines.Dispose();

        public async Task SendAsync(string json) => await _request.Writer.WriteAsync(Encoding.UTF8.GetBytes(json));

        public Task EndBodyAsync() => _request.Writer.CompleteAsync().AsTask();

        public async Task<string?> ReadLineAsync() => await _lines.ReadLineAsync();

        public async Task<string> ReadRestAsync()
        {
            await _response.Writer.CompleteAsync();
            return await _lines.ReadToEndAsync();
        }
    }
}
