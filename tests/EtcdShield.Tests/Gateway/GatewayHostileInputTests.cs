using System.Text.Json;
using EtcdShield.Configuration;
using EtcdShield.Gateway;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using EtcdShield.Tests.Relay;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;

using static EtcdShield.Tests.Gateway.GatewayCalls;

namespace EtcdShield.Tests.Gateway;

/// <summary>
/// What a hostile gateway client can make of the proxy: metadata that only gRPC itself may set, a body that breaks
/// off or is framed wrongly, and JSON whose keys repeat. Each must get a clear status, and etcd must see exactly
/// the request the policy decided on.
/// </summary>
public sealed class GatewayHostileInputTests : IDisposable
{
    private readonly RelayBed _bed = new(methods: "[Maintenance/Status]");
    private readonly GatewayEndpoint _gateway;

    public GatewayHostileInputTests()
    {
        _bed.Etcd.OnEvery("Maintenance/Status", _ => new StatusResponse { Version = "3.4.23" });
        _gateway = GatewayCalls.Endpoint(_bed);
    }

    public void Dispose() => _bed.Dispose();

    // grpc-internal-encoding-request makes Grpc.Net.Client compress the upstream request with the codec it names
    // (and fail on one it does not know); the others are gRPC's own response and retry headers. grpc-go, behind
    // etcd's own gateway, drops reserved keys; no client should be able to steer the proxy's channel to etcd.
    [Theory]
    [InlineData("Grpc-Metadata-Grpc-Internal-Encoding-Request", "bogus")]
    [InlineData("Grpc-Metadata-Grpc-Internal-Encoding-Request", "gzip")]
    [InlineData("Grpc-Metadata-Grpc-Status", "0")]
    [InlineData("Grpc-Metadata-Grpc-Message", "forged")]
    [InlineData("Grpc-Metadata-Grpc-Previous-Rpc-Attempts", "3")]
    public async Task Metadata_reserved_for_grpc_itself_never_reaches_etcd(string header, string value)
    {
        var (status, _) = await PostAsync("/v3/maintenance/status", "{}", http =>
        {
            http.Request.Headers[header] = value;
            http.Request.Headers["Grpc-Metadata-Hasleader"] = "true";
        });

        Assert.Equal(200, status);
        var headers = Assert.Single(_bed.Etcd.Requests).Headers!;
        Assert.DoesNotContain(headers, e => e.Key.StartsWith("grpc-", StringComparison.Ordinal));
        Assert.Equal("true", headers.GetValue("hasleader"));
    }

    [Fact]
    public async Task A_client_that_leaves_while_sending_a_unary_body_ends_the_call_without_an_unhandled_exception()
    {
        // Kestrel fails the body read with an IOException when an HTTP/2 client resets its stream mid-body; an
        // exception out of the endpoint is an Error-level "unhandled exception" log any client can write at will.
        var http = _bed.HttpContext();
        http.Request.Method = "POST";
        http.Request.Path = "/v3/kv/put";
        http.Request.Body = new FailingBody(() => new IOException("The client reset the request stream."));
        http.Response.Body = new MemoryStream();

        await _gateway.HandleAsync(http);

        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_body_whose_http_framing_is_bad_is_400_not_429()
    {
        // Kestrel's BadHttpRequestException is also a bad chunk size or a body that ends before its Content-Length:
        // only its 413 means "too large".
        var http = _bed.HttpContext();
        http.Request.Method = "POST";
        http.Request.Path = "/v3/kv/put";
        http.Request.Body = new FailingBody(() => new BadHttpRequestException("Bad chunk size data.", StatusCodes.Status400BadRequest));
        var response = new MemoryStream();
        http.Response.Body = response;

        await _gateway.HandleAsync(http);

        Assert.Equal(400, http.Response.StatusCode);
        Assert.Equal(3, JsonDocument.Parse(response.ToArray()).RootElement.GetProperty("code").GetInt32());
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Theory]
    [InlineData("/app/a", "/secret/a", 403, null)]
    [InlineData("/secret/a", "/app/a", 200, "/app/a")]
    public async Task A_repeated_key_is_decided_on_the_value_that_reaches_etcd(string first, string last, int expected, string? forwarded)
    {
        // The last of a repeated key wins, as in Go: the policy must judge that one, since it is the one etcd gets.
        var (status, _) = await PostAsync("/v3/kv/put", $$"""{"key":"{{B64(first)}}","value":"eA==","key":"{{B64(last)}}"}""");

        Assert.Equal(expected, status);
        if (forwarded is null)
        {
            Assert.Empty(_bed.Etcd.Requests);
        }
        else
        {
            Assert.Equal(forwarded, Assert.Single(_bed.Etcd.SentTo<PutRequest>("KV/Put")).Key.ToStringUtf8());
        }
    }

    [Theory]
    [InlineData("https://ui.example", "https://ui.example", 200)]
    [InlineData("https://ui.example", "https://UI.example", 403)] // browsers send it lower-case, as the flag requires it
    [InlineData("https://ui.example", "https://ui.example.evil", 403)]
    [InlineData("https://ui.example", "null", 403)]
    [InlineData("https://ui.example", "https://ui.example/", 403)]
    public async Task Only_the_exact_origin_allowed_is_served(string allowed, string origin, int expected)
    {
        var gateway = new GatewayEndpoint(_bed.Relay, new GatewayRoutes(RelayedMethod.All()), new ShieldOptions { CorsAllowedOrigins = [allowed] }, NullLogger<GatewayEndpoint>.Instance);
        var http = _bed.HttpContext();
        http.Request.Method = "POST";
        http.Request.Path = "/v3/maintenance/status";
        http.Request.Headers.Origin = origin;
        http.Response.Body = new MemoryStream();

        await gateway.HandleAsync(http);

        Assert.Equal(expected, http.Response.StatusCode);
        Assert.Equal(expected == 200 ? 1 : 0, _bed.Etcd.Requests.Count);
    }

    private async Task<(int Status, string Body)> PostAsync(string path, string body, Action<DefaultHttpContext>? configure = null)
    {
        var (status, answer, _) = await GatewayCalls.SendAsync(_gateway, _bed, "POST", path, body, configure);
        return (status, answer);
    }

    /// <summary>A request body whose every read fails as Kestrel's does when the client or its framing breaks.</summary>
    private sealed class FailingBody(Func<Exception> failure) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => throw failure();

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromException<int>(failure());

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromException<int>(failure());

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
