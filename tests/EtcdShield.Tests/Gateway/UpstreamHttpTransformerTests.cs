using EtcdShield.Gateway;
using Microsoft.AspNetCore.Http;

namespace EtcdShield.Tests.Gateway;

/// <summary>What a forwarded request keeps and loses on its way to etcd, and what etcd's answer loses on its way back.</summary>
public sealed class UpstreamHttpTransformerTests
{
    [Fact]
    public async Task Etcd_sees_neither_the_clients_authorization_nor_its_host_nor_forwarded_headers_but_the_rest()
    {
        var http = new DefaultHttpContext();
        http.Request.Method = "GET";
        http.Request.Host = new HostString("shield.example:23790");
        http.Request.Headers.Authorization = "secret-token";
        http.Request.Headers.Accept = "application/json";
        http.Request.Headers.Connection = "keep-alive";
        using var request = new HttpRequestMessage();

        await UpstreamHttp.EtcdTransformer.Instance.TransformRequestAsync(http, request, "http://127.0.0.1:2379", CancellationToken.None);

        Assert.Null(request.Headers.Authorization);
        Assert.Null(request.Headers.Host);
        Assert.DoesNotContain(request.Headers, h => h.Key.StartsWith("X-Forwarded", StringComparison.OrdinalIgnoreCase));
        Assert.False(request.Headers.Contains("Connection"));
        Assert.Equal("application/json", Assert.Single(request.Headers.Accept).MediaType);
    }

    [Fact]
    public async Task Etcds_cors_headers_are_dropped_and_the_rest_of_its_answer_is_kept()
    {
        var http = new DefaultHttpContext();
        using var response = new HttpResponseMessage(System.Net.HttpStatusCode.OK) { Content = new StringContent("{}", System.Text.Encoding.UTF8, "application/json") };
        response.Headers.TryAddWithoutValidation("Access-Control-Allow-Origin", "*");
        response.Headers.TryAddWithoutValidation("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE");
        response.Headers.TryAddWithoutValidation("access-control-allow-headers", "accept, content-type, authorization");
        response.Headers.TryAddWithoutValidation("X-Etcd-Cluster-Id", "cdf818194e3a8c32");

        Assert.True(await UpstreamHttp.EtcdTransformer.Instance.TransformResponseAsync(http, response, CancellationToken.None));

        Assert.DoesNotContain(http.Response.Headers, h => h.Key.StartsWith("Access-Control-", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("cdf818194e3a8c32", http.Response.Headers["X-Etcd-Cluster-Id"].ToString());
        Assert.Equal("application/json; charset=utf-8", http.Response.Headers.ContentType.ToString());
    }
}
