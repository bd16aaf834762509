using System.Buffers;
using System.Globalization;
using System.Text;
using Grpc.Core;

namespace EtcdShield.Gateway;

/// <summary>
/// How a gRPC status reaches a gateway client, as grpc-gateway v1 (etcd 3.4.24+ and 3.5) writes it: the HTTP status
/// of <c>runtime.HTTPStatusFromCode</c>, and the error body of a call (<c>{"error":..,"code":..,"message":..}</c>) or
/// of a stream (<c>{"error":{"grpc_code":..,"http_code":..,"message":..,"http_status":..}}</c>).
/// </summary>
internal static class GatewayStatus
{
    public static int HttpStatusOf(StatusCode code) => code switch
    {
        StatusCode.OK => StatusCodes.Status200OK,
        StatusCode.Cancelled => StatusCodes.Status408RequestTimeout,
        StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange => StatusCodes.Status400BadRequest,
        StatusCode.DeadlineExceeded => StatusCodes.Status504GatewayTimeout,
        StatusCode.NotFound => StatusCodes.Status404NotFound,
        StatusCode.AlreadyExists or StatusCode.Aborted => StatusCodes.Status409Conflict,
        StatusCode.PermissionDenied => StatusCodes.Status403Forbidden,
        StatusCode.Unauthenticated => StatusCodes.Status401Unauthorized,
        StatusCode.ResourceExhausted => StatusCodes.Status429TooManyRequests,
        StatusCode.Unimplemented => StatusCodes.Status501NotImplemented,
        StatusCode.Unavailable => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status500InternalServerError,
    };

    /// <summary>
    /// A status with the words Go's context gives it where it came without any (Grpc.Net.Client reports an
    /// expired deadline with an empty message), so an error body always says what happened.
    /// </summary>
    public static Status Described(Status status) => status.Detail.Length > 0 ? status : status.StatusCode switch
    {
        StatusCode.DeadlineExceeded => new Status(status.StatusCode, "context deadline exceeded"),
        StatusCode.Cancelled => new Status(status.StatusCode, "context canceled"),
        _ => status,
    };

    /// <summary>The error body of a call: <c>{"error":"msg","code":N,"message":"msg"}</c>.</summary>
    public static byte[] CallError(Status status)
    {
        status = Described(status);
        var body = new ArrayBufferWriter<byte>(64 + status.Detail.Length);
        Append(body, "{\"error\":");
        JsonpbWriter.WriteString(status.Detail, body);
        Append(body, ",\"code\":" + ((int)status.StatusCode).ToString(CultureInfo.InvariantCulture) + ",\"message\":");
        JsonpbWriter.WriteString(status.Detail, body);
        Append(body, "}");
        return body.WrittenSpan.ToArray();
    }

    /// <summary>The error that ends a stream: <c>{"error":{"grpc_code":N,"http_code":N,"message":"msg","http_status":"text"}}</c>.</summary>
    public static byte[] StreamError(Status status)
    {
        status = Described(status);
        var http = HttpStatusOf(status.StatusCode);
        var body = new ArrayBufferWriter<byte>(96 + status.Detail.Length);
        Append(body, "{\"error\":{");
        // A field at its default is left out, as jsonpb leaves it out; a stream never ends with an OK error.
        var separator = "";
        if (status.StatusCode != StatusCode.OK)
        {
            Append(body, "\"grpc_code\":" + ((int)status.StatusCode).ToString(CultureInfo.InvariantCulture));
            separator = ",";
        }

        Append(body, separator + "\"http_code\":" + http.ToString(CultureInfo.InvariantCulture));
        if (status.Detail.Length > 0)
        {
            Append(body, ",\"message\":");
            JsonpbWriter.WriteString(status.Detail, body);
        }

        Append(body, ",\"http_status\":");
        JsonpbWriter.WriteString(ReasonPhrase(http), body);
        Append(body, "}}");
        return body.WrittenSpan.ToArray();
    }

    /// <summary>Go's <c>http.StatusText</c> for the codes above.</summary>
    private static string ReasonPhrase(int status) => status switch
    {
        StatusCodes.Status200OK => "OK",
        StatusCodes.Status400BadRequest => "Bad Request",
        StatusCodes.Status401Unauthorized => "Unauthorized",
        StatusCodes.Status403Forbidden => "Forbidden",
        StatusCodes.Status404NotFound => "Not Found",
        StatusCodes.Status408RequestTimeout => "Request Timeout",
        StatusCodes.Status409Conflict => "Conflict",
        StatusCodes.Status429TooManyRequests => "Too Many Requests",
        StatusCodes.Status501NotImplemented => "Not Implemented",
        StatusCodes.Status503ServiceUnavailable => "Service Unavailable",
        StatusCodes.Status504GatewayTimeout => "Gateway Timeout",
        _ => "Internal Server Error",
    };

    private static void Append(ArrayBufferWriter<byte> body, string ascii) => body.Write(Encoding.ASCII.GetBytes(ascii));
}
