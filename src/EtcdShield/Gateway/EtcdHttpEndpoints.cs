using System.Text.Json.Serialization;
using EtcdShield.Audit;
using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Relay;
using Grpc.Core;
using Yarp.ReverseProxy.Forwarder;

namespace EtcdShield.Gateway;

/// <summary>
/// etcd's plain HTTP endpoints on the client URLs, which clients probe before they choose an API path: GET (and
/// HEAD) <c>/version</c>, <c>/health</c>, <c>/livez</c>, <c>/readyz</c>, query string included, forwarded to etcd
/// and answered as etcd answers. They carry no key and no value, so any caller admitted by the policy in force
/// now may use them; any other gets 403 and nothing reaches etcd. Each request is audited and counted as a call
/// named <c>HTTP/version</c>, <c>HTTP/health</c>, <c>HTTP/livez</c> or <c>HTTP/readyz</c>.
/// </summary>
internal sealed partial class EtcdHttpEndpoints
{
    private const string UnreachableMessage = "etcdshield: etcd is unreachable";

    private readonly CallerLookup _callers;
    private readonly AccessGate _gate;
    private readonly UpstreamHttp _upstream;
    private readonly RelayMetrics _metrics;
    private readonly AuditLog _audit;
    private readonly TimeProvider _time;

    public EtcdHttpEndpoints(CallerLookup callers, AccessGate gate, UpstreamHttp upstream, RelayMetrics metrics, AuditLog audit, TimeProvider time)
    {
        _callers = callers;
        _gate = gate;
        _upstream = upstream;
        _metrics = metrics;
        _audit = audit;
        _time = time;
    }

    public static void AddTo(IServiceCollection services)
    {
        services.AddHttpForwarder();
        services.AddSingleton<UpstreamHttp>();
        services.AddSingleton<EtcdHttpEndpoints>();
        // YARP logs every forwarded request, and each failure with its stack trace; UpstreamHttp says what matters.
        services.Configure<LoggerFilterOptions>(filters => filters.AddFilter("Yarp", LogLevel.Error));
    }

    /// <summary>Serves the endpoints on the client URLs only: the metrics URL keeps its own /health.</summary>
    public static void Map(WebApplication app)
    {
        var metricsPort = app.Services.GetRequiredService<ShieldOptions>().MetricsListenUrl?.Port;
        var endpoints = app.Services.GetRequiredService<EtcdHttpEndpoints>();
        app.Use((context, next) =>
            context.Connection.LocalPort != metricsPort && MethodName(context.Request.Path) is { } method
                ? endpoints.HandleAsync(context, method)
                : next(context));
    }

    /// <summary>The call name of an endpoint's path, or null for any other path. Exact and case-sensitive, as etcd's mux matches.</summary>
    public static string? MethodName(PathString path) => path.Value switch
    {
        "/version" => "HTTP/version",
        "/health" => "HTTP/health",
        "/livez" => "HTTP/livez",
        "/readyz" => "HTTP/readyz",
        _ => null,
    };

    /// <summary>Accept, admit, forward, record: the whole request.</summary>
    public async Task HandleAsync(HttpContext context, string method)
    {
        var started = _time.GetTimestamp();
        var caller = _callers.Of(context);
        var denial = _gate.AuthorizeAdmission(caller, method);
        StatusCode code;
        if (denial is not null)
        {
            code = StatusCode.PermissionDenied;
            await WriteErrorAsync(context, StatusCodes.Status403Forbidden, code, denial.Status.Detail).ConfigureAwait(false);
        }
        else if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            code = StatusCode.Unimplemented;
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            context.Response.Headers.Allow = "GET, HEAD";
        }
        else
        {
            code = await ForwardAsync(context).ConfigureAwait(false);
        }

        var elapsed = _time.GetElapsedTime(started);
        _metrics.RequestCompleted(method, code, elapsed);
        _audit.Record(new AuditEntry(_time.GetUtcNow(), caller, method, [], denial is not null, denial?.Recorded, code, elapsed));
    }

    private async Task<StatusCode> ForwardAsync(HttpContext context)
    {
        var error = await _upstream.ForwardAsync(context).ConfigureAwait(false);
        if (error == ForwarderError.None)
        {
            return CodeOf(context.Response.StatusCode);
        }

        if (context.RequestAborted.IsCancellationRequested)
        {
            return StatusCode.Cancelled;
        }

        if (!context.Response.HasStarted)
        {
            // No member answered: say so in etcd's shape, never with the forwarder's bare 502 or 504.
            context.Response.Clear();
            await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, StatusCode.Unavailable, UnreachableMessage).ConfigureAwait(false);
        }

        // Otherwise etcd's answer was cut short, and the forwarder has reset the stream.
        return StatusCode.Unavailable;
    }

    /// <summary>The gRPC code an HTTP status stands for in grpc-gateway's table, for the audit record and the metrics.</summary>
    internal static StatusCode CodeOf(int status) => status switch
    {
        < 400 => StatusCode.OK,
        400 => StatusCode.InvalidArgument,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.NotFound,
        405 or 501 => StatusCode.Unimplemented,
        409 => StatusCode.Aborted,
        429 => StatusCode.ResourceExhausted,
        503 => StatusCode.Unavailable,
        504 => StatusCode.DeadlineExceeded,
        >= 500 => StatusCode.Internal,
        _ => StatusCode.Unknown,
    };

    private static Task WriteErrorAsync(HttpContext context, int status, StatusCode code, string message)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new EtcdError(message, (int)code, message), ErrorJson.Default.EtcdError);
    }

    // etcd's error body, with its field names spelled out so no serializer option can change them.
    private sealed record EtcdError(
        [property: JsonPropertyName("error")] string Error,
        [property: JsonPropertyName("code")] int Code,
        [property: JsonPropertyName("message")] string Message);

    // Source-generated: the published program is trimmed, and reflection-based serialization is off there.
    [JsonSerializable(typeof(EtcdError))]
    private sealed partial class ErrorJson : JsonSerializerContext;
}
