using EtcdShield.Configuration;
using EtcdShield.Relay;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace EtcdShield.Gateway;

/// <summary>
/// etcd's HTTP/JSON gateway, served by the proxy itself: each request is decoded into the etcd protobuf request,
/// takes the relay's one path (<see cref="RequestRelay"/>: policy, audit, value sealing and opening, limits,
/// metrics) exactly as the same call over gRPC would, and the answer is written back as etcd's gateway writes it.
/// Nothing is forwarded to etcd's own gateway, which would see plaintext and no policy.
/// </summary>
internal sealed partial class GatewayEndpoint
{
    public const string JsonContentType = "application/json";

    private readonly RequestRelay _relay;
    private readonly GatewayRoutes _routes;
    private readonly ILogger<GatewayEndpoint> _logger;
    private readonly IReadOnlyList<string> _allowedOrigins;

    // gRPC refuses a request message above this, so the gateway does too, after decoding.
    private readonly int _maxMessageBytes;

    // A JSON request carries its bytes in base64 (4/3 of their size) among field names and punctuation: twice the
    // message limit bounds what is buffered for one request without refusing any request gRPC would accept.
    private readonly int _maxJsonBytes;

    public GatewayEndpoint(RequestRelay relay, GatewayRoutes routes, ShieldOptions options, ILogger<GatewayEndpoint> logger)
    {
        _relay = relay;
        _routes = routes;
        _logger = logger;
        _allowedOrigins = options.CorsAllowedOrigins;
        _maxMessageBytes = ShieldOptions.MaxReceiveMessageBytes(options.MaxRequestBytes);
        _maxJsonBytes = (int)Math.Min(int.MaxValue, (2L * _maxMessageBytes) + (64 * 1024));
    }

    public async Task HandleAsync(HttpContext http)
    {
        if (http.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true)
        {
            // A gRPC call to a gateway path names no etcd method.
            AnswerGrpcUnimplemented(http.Response);
            return;
        }

        if (_routes.Find(http.Request.Path) is not { } method)
        {
            await WriteCallErrorAsync(http.Response, new Status(StatusCode.NotFound, NotFoundMessage(http.Request.Path))).ConfigureAwait(false);
            return;
        }

        if (ForeignOrigin(http.Request) is { } origin)
        {
            await WriteCallErrorAsync(http.Response, new Status(StatusCode.PermissionDenied, $"etcdshield: requests from the browser origin {Truncated(origin)} are refused (not in --cors-allowed-origins)")).ConfigureAwait(false);
            return;
        }

        if (!HttpMethods.IsPost(http.Request.Method))
        {
            http.Response.Headers.Allow = "POST";
            await WriteCallErrorAsync(http.Response, new Status(StatusCode.Unimplemented, "Method Not Allowed"), StatusCodes.Status405MethodNotAllowed).ConfigureAwait(false);
            return;
        }

        GatewayCallContext context;
        try
        {
            context = GatewayCallContext.For(http, $"/{method.Descriptor.Service.FullName}/{method.Descriptor.Name}");
        }
        catch (RpcException e)
        {
            await WriteCallErrorAsync(http.Response, e.Status).ConfigureAwait(false);
            return;
        }

        using (context)
        {
            switch (method.Type)
            {
                case MethodType.Unary:
                    await UnaryAsync(http, method, context).ConfigureAwait(false);
                    break;
                case MethodType.ServerStreaming:
                    await ServerStreamingAsync(http, method, context).ConfigureAwait(false);
                    break;
                default:
                    await DuplexStreamingAsync(http, method, context).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>Refuses a decoded request larger than gRPC would accept, with gRPC's own status and words.</summary>
    internal static void CheckSize(IMessage request, int maxMessageBytes)
    {
        var size = request.CalculateSize();
        if (size > maxMessageBytes)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"grpc: received message larger than max ({size} vs. {maxMessageBytes})"));
        }
    }

    private async Task UnaryAsync(HttpContext http, RelayedMethod method, GatewayCallContext context)
    {
        IMessage response;
        try
        {
            var request = await ReadRequestAsync(http, method, context).ConfigureAwait(false);
            response = await _relay.UnaryAsync(method, request, context).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            await WriteCallErrorAsync(http.Response, e.Status).ConfigureAwait(false);
            return;
        }

        var body = JsonpbWriter.ToUtf8Bytes(response);
        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = JsonContentType;
        http.Response.ContentLength = body.Length;
        await WriteAsync(http.Response, body).ConfigureAwait(false);
    }

    private async Task ServerStreamingAsync(HttpContext http, RelayedMethod method, GatewayCallContext context)
    {
        IMessage request;
        try
        {
            request = await ReadRequestAsync(http, method, context).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            await WriteCallErrorAsync(http.Response, e.Status).ConfigureAwait(false);
            return;
        }

        var results = new JsonResultStream(http.Response);
        try
        {
            await _relay.ServerStreamingAsync(method, request, results, context).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            await WriteStreamErrorAsync(http.Response, results, e.Status).ConfigureAwait(false);
        }
    }

    private async Task DuplexStreamingAsync(HttpContext http, RelayedMethod method, GatewayCallContext context)
    {
        // A stream's body stays open for as long as its client wants to add requests (a watch, keep-alives): no total
        // size and no minimum data rate; each message is limited on its own.
        OpenEndedBody(http);
        var requests = new JsonRequestStream(new JsonMessageReader(http.Request.BodyReader, method.Descriptor.InputType, _maxJsonBytes), _maxMessageBytes);
        var results = new JsonResultStream(http.Response);
        try
        {
            await _relay.DuplexStreamingAsync(method, requests, results, context).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            await WriteStreamErrorAsync(http.Response, results, e.Status).ConfigureAwait(false);
        }
    }

    /// <summary>The request of a call: the first JSON value of the body, or an empty message for an empty body.</summary>
    private async Task<IMessage> ReadRequestAsync(HttpContext http, RelayedMethod method, GatewayCallContext context)
    {
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = _maxJsonBytes;
        }

        var input = method.Descriptor.InputType;
        IMessage? request;
        try
        {
            request = await new JsonMessageReader(http.Request.BodyReader, input, _maxJsonBytes).ReadAsync(context.CancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // The body did not arrive within the call's deadline, or the client left while sending it.
            throw context.Ended();
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            // Kestrel's own limit, for a body announced (Content-Length) as larger than any request may be.
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"grpc: received message larger than max ({e.Message})"));
        }
        catch (BadHttpRequestException e)
        {
            // A body Kestrel could not read as HTTP: a bad chunk, or fewer bytes than its Content-Length.
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"the request body is not valid HTTP ({e.Message})"));
        }
        catch (IOException)
        {
            // The client reset its stream or dropped the connection while sending the body.
            throw new RpcException(new Status(StatusCode.Cancelled, "context canceled"));
        }

        request ??= input.Parser.ParseFrom(ByteString.Empty);
        CheckSize(request, _maxMessageBytes);
        return request;
    }

    private static void OpenEndedBody(HttpContext http)
    {
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = null;
        }

        if (http.Features.Get<IHttpMinRequestBodyDataRateFeature>() is { } rate)
        {
            rate.MinDataRate = null;
        }
    }

    private static Task WriteCallErrorAsync(HttpResponse response, Status status, int? httpStatus = null)
    {
        if (response.HasStarted)
        {
            return Task.CompletedTask;
        }

        var body = GatewayStatus.CallError(status);
        response.StatusCode = httpStatus ?? GatewayStatus.HttpStatusOf(status.StatusCode);
        response.ContentType = JsonContentType;
        response.ContentLength = body.Length;
        if (status.StatusCode == StatusCode.Unauthenticated)
        {
            response.Headers.WWWAuthenticate = status.Detail;
        }

        return WriteAsync(response, body);
    }

    /// <summary>
    /// A stream's error: as its status when nothing has been written yet, otherwise as its last message, after
    /// which the response ends (the HTTP status is already 200).
    /// </summary>
    private async Task WriteStreamErrorAsync(HttpResponse response, JsonResultStream results, Status status)
    {
        if (status.StatusCode == StatusCode.Cancelled && response.HttpContext.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        var body = GatewayStatus.StreamError(status);
        if (!results.Started)
        {
            response.StatusCode = GatewayStatus.HttpStatusOf(status.StatusCode);
            response.ContentType = JsonContentType;
        }

        try
        {
            await response.Body.WriteAsync(body, response.HttpContext.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            Log.StreamErrorUndelivered(_logger, status.StatusCode);
        }
    }

    private static async Task WriteAsync(HttpResponse response, byte[] body)
    {
        try
        {
            await response.Body.WriteAsync(body, response.HttpContext.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // The client has gone; the call was recorded with the status it would have heard.
        }
    }

    private static void AnswerGrpcUnimplemented(HttpResponse response)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)StatusCode.Unimplemented).ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = "Method is unimplemented.";
    }

    /// <summary>
    /// The Origin of a request a browser sent from a page not in <c>--cors-allowed-origins</c>, or null. A browser
    /// presents the user's client certificate to any page's cross-site POST, and a text/plain POST needs no CORS
    /// preflight, so without this any web page its user opens could write to etcd through the gateway in the
    /// user's name. Clients that are not browsers send no Origin.
    /// </summary>
    private string? ForeignOrigin(HttpRequest request)
    {
        var origin = request.Headers.Origin.ToString();
        return origin.Length == 0 || _allowedOrigins.Contains("*") || _allowedOrigins.Contains(origin, StringComparer.Ordinal) ? null : origin;
    }

    private static string Truncated(string text) => text.Length <= 64 ? text : text[..64] + "...";

    private static string NotFoundMessage(PathString path) =>
        path.StartsWithSegments("/v3alpha", StringComparison.Ordinal)
            ? "etcd 3.4 and later serve the gateway under /v3/, not /v3alpha/"
            : "Not Found";

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.StreamErrorUndelivered, EventName = nameof(EventIds.StreamErrorUndelivered), Level = LogLevel.Debug, Message = "A gateway stream ended with {Code}, but its client had gone before it could be told")]
        public static partial void StreamErrorUndelivered(ILogger logger, StatusCode code);
    }
}
