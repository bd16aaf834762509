using System.Text.Json.Serialization;

namespace EtcdShield.Relay;

/// <summary>
/// etcd's HTTP/JSON gateway (<c>/v3/...</c>) carries the same values as gRPC. Forwarding it blindly would
/// bypass encryption and policy, so until the proxy translates it, it is refused with a clear answer in the
/// gateway's own error shape.
/// </summary>
internal static class GatewayRefusal
{
    public static readonly string[] Prefixes = ["/v3/", "/v3beta/", "/v3alpha/"];

    private const string Message = "etcdshield: the HTTP/JSON gateway is not supported; use the gRPC API";

    public static Task WriteAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status501NotImplemented;
        return context.Response.WriteAsJsonAsync(new GatewayError(Message, 12, Message));
    }

    // The names are the gateway's JSON fields, spelled out so no serializer option can change them.
    private sealed record GatewayError(
        [property: JsonPropertyName("error")] string Error,
        [property: JsonPropertyName("code")] int Code,
        [property: JsonPropertyName("message")] string Message);
}
