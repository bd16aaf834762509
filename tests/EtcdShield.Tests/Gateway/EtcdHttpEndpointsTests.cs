using System.Text.Json;
using EtcdShield.Gateway;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace EtcdShield.Tests.Gateway;

/// <summary>
/// etcd's plain endpoints: an admitted caller's request reaches the first member that answers and comes back as
/// etcd sent it; any other caller, or any other method, never reaches etcd; every request is audited and counted.
/// </summary>
public sealed class EtcdHttpEndpointsTests : IDisposable
{
    private readonly EtcdHttpBed _bed = new();

    public void Dispose() => _bed.Dispose();

    [Theory]
    [InlineData("/version", "HTTP/version")]
    [InlineData("/health", "HTTP/health")]
    [InlineData("/livez", "HTTP/livez")]
    [InlineData("/readyz", "HTTP/readyz")]
    [InlineData("/Version", null)]
    [InlineData("/health/", null)]
    [InlineData("/metrics", null)]
    [InlineData("/v3/kv/range", null)]
    public void Only_etcds_four_paths_exactly_are_endpoints(string path, string? method) =>
        Assert.Equal(method, EtcdHttpEndpoints.MethodName(path));

    [Fact]
    public async Task An_admitted_caller_gets_etcds_answer_from_the_first_member_and_is_audited()
    {
        var http = _bed.Request("/version");

        await _bed.SendAsync(http);

        Assert.Equal([EtcdHttpBed.First], _bed.Forwarder.Asked);
        Assert.Equal(StatusCodes.Status200OK, http.Response.StatusCode);
        Assert.Equal(_bed.Forwarder.Body, EtcdHttpBed.Body(http));
        var record = Assert.Single(await _bed.AuditedAsync());
        Assert.Equal("app", record.GetProperty("identity").GetString());
        Assert.Equal("HTTP/version", record.GetProperty("method").GetString());
        Assert.Equal("allowed", record.GetProperty("outcome").GetString());
        Assert.Equal("OK", record.GetProperty("code").GetString());
        Assert.Contains(_bed.Requests.GetMeasurementSnapshot(), m => m.Tags["method"] as string == "HTTP/version" && m.Tags["code"] as string == "OK");
    }

    [Fact]
    public async Task A_caller_the_policy_in_force_no_longer_admits_gets_403_in_etcds_shape_and_nothing_reaches_etcd()
    {
        _bed.AdmitOnly("someone-else");
        var http = _bed.Request("/health");

        await _bed.SendAsync(http);

        Assert.Empty(_bed.Forwarder.Asked);
        Assert.Equal(StatusCodes.Status403Forbidden, http.Response.StatusCode);
        using var body = JsonDocument.Parse(EtcdHttpBed.Body(http));
        Assert.Equal(7, body.RootElement.GetProperty("code").GetInt32());
        Assert.StartsWith("etcdshield: permission denied: identity \"CN=app sha256:", body.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.EndsWith("\" matches no identity of the policy", body.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(body.RootElement.GetProperty("error").GetString(), body.RootElement.GetProperty("message").GetString());
        var record = Assert.Single(await _bed.AuditedAsync());
        Assert.Equal("HTTP/health", record.GetProperty("method").GetString());
        Assert.Equal("denied", record.GetProperty("outcome").GetString());
        Assert.Equal("PERMISSION_DENIED", record.GetProperty("code").GetString());
        Assert.Contains("matches no identity of the policy", record.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    public async Task Other_methods_are_405_and_never_reach_etcd(string method)
    {
        var http = _bed.Request("/version", method);

        await _bed.SendAsync(http);

        Assert.Empty(_bed.Forwarder.Asked);
        Assert.Equal(StatusCodes.Status405MethodNotAllowed, http.Response.StatusCode);
        Assert.Equal("GET, HEAD", http.Response.Headers.Allow.ToString());
        Assert.Equal("UNIMPLEMENTED", Assert.Single(await _bed.AuditedAsync()).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Head_is_forwarded_like_get()
    {
        await _bed.SendAsync(_bed.Request("/health", "HEAD"));

        Assert.Equal([EtcdHttpBed.First], _bed.Forwarder.Asked);
    }

    [Theory]
    [InlineData(ForwarderError.Request)]
    [InlineData(ForwarderError.RequestTimedOut)]
    public async Task A_member_that_does_not_answer_hands_the_request_to_the_next_which_is_then_asked_first(ForwarderError error)
    {
        _bed.Forwarder.Fail(EtcdHttpBed.First, error);
        var failedOver = _bed.Request("/health");

        await _bed.SendAsync(failedOver);
        _bed.Forwarder.Recover(EtcdHttpBed.First);
        await _bed.SendAsync(_bed.Request("/health"));

        Assert.Equal([EtcdHttpBed.First, EtcdHttpBed.Second, EtcdHttpBed.Second], _bed.Forwarder.Asked);
        Assert.Equal(StatusCodes.Status200OK, failedOver.Response.StatusCode);
        Assert.Equal(_bed.Forwarder.Body, EtcdHttpBed.Body(failedOver));
    }

    [Fact]
    public async Task With_no_member_answering_the_client_gets_503_in_etcds_shape_after_each_member_was_tried_once()
    {
        _bed.Forwarder.Fail(EtcdHttpBed.First, ForwarderError.Request);
        _bed.Forwarder.Fail(EtcdHttpBed.Second, ForwarderError.RequestTimedOut);
        var http = _bed.Request("/version");

        await _bed.SendAsync(http);

        Assert.Equal([EtcdHttpBed.First, EtcdHttpBed.Second], _bed.Forwarder.Asked);
        Assert.Equal(StatusCodes.Status503ServiceUnavailable, http.Response.StatusCode);
        Assert.Equal("""{"error":"etcdshield: etcd is unreachable","code":14,"message":"etcdshield: etcd is unreachable"}""", EtcdHttpBed.Body(http));
        Assert.Equal("UNAVAILABLE", Assert.Single(await _bed.AuditedAsync()).GetProperty("code").GetString());
    }

    [Fact]
    public async Task An_error_that_is_not_an_unreachable_member_is_not_retried_elsewhere()
    {
        _bed.Forwarder.Fail(EtcdHttpBed.First, ForwarderError.ResponseHeaders);

        await _bed.SendAsync(_bed.Request("/version"));

        Assert.Equal([EtcdHttpBed.First], _bed.Forwarder.Asked);
    }

    [Theory]
    [InlineData(404, "NOT_FOUND")]
    [InlineData(503, "UNAVAILABLE")]
    [InlineData(500, "INTERNAL")]
    public async Task Etcds_own_status_is_passed_through_and_audited_as_the_code_it_stands_for(int status, string code)
    {
        _bed.Forwarder.Status = status;
        var http = _bed.Request("/readyz", query: "?exclude=serializable_read");

        await _bed.SendAsync(http);

        Assert.Equal(status, http.Response.StatusCode);
        Assert.Equal(code, Assert.Single(await _bed.AuditedAsync()).GetProperty("code").GetString());
    }
}
