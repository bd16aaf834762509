using EtcdShield.Gateway;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace EtcdShield.Tests.Gateway;

/// <summary>The CORS policy, evaluated by ASP.NET Core's own CORS service as the middleware does for each request.</summary>
public sealed class GatewayCorsTests
{
    [Fact]
    public void No_origins_no_policy() => Assert.Null(GatewayCors.PolicyFor([]));

    [Fact]
    public void A_preflight_from_an_allowed_origin_is_told_etcds_methods_and_headers()
    {
        var headers = Preflight(["https://app.example", "http://127.0.0.1:3000"], "http://127.0.0.1:3000", "PUT", "content-type,authorization");

        Assert.Equal("http://127.0.0.1:3000", headers.AccessControlAllowOrigin.ToString());
        Assert.Equal(["POST", "GET", "OPTIONS", "PUT", "DELETE"], Split(headers.AccessControlAllowMethods));
        Assert.Equal(["accept", "content-type", "authorization"], Split(headers.AccessControlAllowHeaders));
    }

    [Fact]
    public void Another_origin_is_told_nothing()
    {
        var headers = Preflight(["https://app.example"], "https://evil.example", "POST", "content-type");

        Assert.DoesNotContain(headers, h => h.Key.StartsWith("Access-Control-", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void A_header_etcd_does_not_allow_is_not_among_those_the_browser_is_told()
    {
        var headers = Preflight(["https://app.example"], "https://app.example", "POST", "x-custom");

        Assert.DoesNotContain("x-custom", Split(headers.AccessControlAllowHeaders));
    }

    [Fact]
    public void A_star_allows_any_origin_with_a_star_as_etcd_answers()
    {
        var headers = Preflight(["*"], "https://anything.example", "POST", "content-type");

        Assert.Equal("*", headers.AccessControlAllowOrigin.ToString());
    }

    private static IHeaderDictionary Preflight(IReadOnlyList<string> origins, string origin, string method, string requestHeaders)
    {
        var policy = GatewayCors.PolicyFor(origins)!;
        var http = new DefaultHttpContext();
        http.Request.Method = "OPTIONS";
        http.Request.Headers.Origin = origin;
        http.Request.Headers.AccessControlRequestMethod = method;
        http.Request.Headers.AccessControlRequestHeaders = requestHeaders;
        var cors = new CorsService(Options.Create(new CorsOptions()), NullLoggerFactory.Instance);

        var result = cors.EvaluatePolicy(http, policy);
        Assert.True(result.IsPreflightRequest);
        cors.ApplyResult(result, http.Response);
        return http.Response.Headers;
    }

    private static string[] Split(Microsoft.Extensions.Primitives.StringValues value) =>
        value.ToString().Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
}
