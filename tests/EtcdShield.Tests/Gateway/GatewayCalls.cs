using System.Text;
using EtcdShield.Configuration;
using EtcdShield.Gateway;
using EtcdShield.Relay;
using EtcdShield.Tests.Relay;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Gateway;

/// <summary>The gateway in front of a <see cref="RelayBed"/>, and one whole request to it from the bed's client.</summary>
internal static class GatewayCalls
{
    /// <summary>A gateway over the bed's relay, with a small request limit (1 KiB plus gRPC's slack) so limits are cheap to reach.</summary>
    public static GatewayEndpoint Endpoint(RelayBed bed, ShieldOptions? options = null) =>
        new(bed.Relay, new GatewayRoutes(RelayedMethod.All()), options ?? new ShieldOptions { MaxRequestBytes = 1024 }, NullLogger<GatewayEndpoint>.Instance);

    public static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    /// <summary>Sends <paramref name="body"/> whole and returns the status, the body written and the request as the gateway left it.</summary>
    public static async Task<(int Status, string Body, DefaultHttpContext Http)> SendAsync(
        GatewayEndpoint gateway, RelayBed bed, string method, string path, string body, Action<DefaultHttpContext>? configure = null)
    {
        var http = bed.HttpContext();
        http.Request.Method = method;
        http.Request.Path = path;
        http.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body));
        var response = new MemoryStream();
        http.Response.Body = response;
        configure?.Invoke(http);

        await gateway.HandleAsync(http);

        return (http.Response.StatusCode, Encoding.UTF8.GetString(response.ToArray()), http);
    }
}
