using System.Globalization;
using System.Net.Sockets;
using Grpc.Core;
using Microsoft.Extensions.Primitives;

namespace EtcdShield.Gateway;

/// <summary>
/// A gateway request seen as the gRPC call it becomes, so that it takes the relay's one path: the connection (and
/// with it the admitted client certificate), the metadata grpc-gateway derives from HTTP headers, the deadline of a
/// <c>Grpc-Timeout</c> header, and cancellation when the HTTP client goes away.
/// </summary>
internal sealed class GatewayCallContext : ServerCallContext, IDisposable
{
    /// <summary>The key under which grpc-dotnet's <c>GetHttpContext()</c> finds the request of a call context it did not make.</summary>
    private const string HttpContextKey = "__HttpContext";

    private const string MetadataPrefix = "Grpc-Metadata-";

    private readonly HttpContext _http;
    private readonly string _method;
    private readonly Metadata _requestHeaders;
    private readonly DateTime _deadline;
    private readonly CancellationTokenSource? _deadlineSource;
    private readonly CancellationToken _cancellation;
    private readonly Dictionary<object, object> _userState;

    private GatewayCallContext(HttpContext http, string method, Metadata requestHeaders, TimeSpan? timeout)
    {
        _http = http;
        _method = method;
        _requestHeaders = requestHeaders;
        _userState = new Dictionary<object, object> { [HttpContextKey] = http };
        // Beyond what a timer can wait (about 49 days) a deadline is no deadline.
        if (timeout is { } within && within < TimeSpan.FromDays(30))
        {
            _deadline = DateTime.UtcNow + within;
            _deadlineSource = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
            _deadlineSource.CancelAfter(within);
            _cancellation = _deadlineSource.Token;
        }
        else
        {
            _deadline = DateTime.MaxValue;
            _cancellation = http.RequestAborted;
        }
    }

    /// <summary>
    /// The call for <paramref name="http"/>. Metadata as grpc-gateway v1 annotates it: <c>Authorization</c> becomes
    /// <c>authorization</c> (etcd reads its auth token from it), <c>Grpc-Metadata-X</c> becomes <c>x</c> (a
    /// <c>-bin</c> key's value base64-decoded); a header that cannot be metadata is refused as INVALID_ARGUMENT.
    /// W3C trace context (<c>traceparent</c>, <c>tracestate</c>) is metadata too, so that an HTTP client's trace is
    /// joined as a gRPC client's is.
    /// </summary>
    public static GatewayCallContext For(HttpContext http, string fullMethodName)
    {
        var metadata = new Metadata();
        TimeSpan? timeout = null;
        foreach (var (name, values) in http.Request.Headers)
        {
            if (name.Equals("Authorization", StringComparison.OrdinalIgnoreCase))
            {
                AddAll(metadata, "authorization", values);
            }
            else if (name.StartsWith(MetadataPrefix, StringComparison.OrdinalIgnoreCase) && name.Length > MetadataPrefix.Length)
            {
                AddAll(metadata, name[MetadataPrefix.Length..].ToLowerInvariant(), values);
            }
            else if (name.Equals("traceparent", StringComparison.OrdinalIgnoreCase) || name.Equals("tracestate", StringComparison.OrdinalIgnoreCase))
            {
                AddAll(metadata, name.ToLowerInvariant(), values);
            }
            else if (name.Equals("Grpc-Timeout", StringComparison.OrdinalIgnoreCase))
            {
                timeout = Timeout(values.ToString());
            }
        }

        return new GatewayCallContext(http, fullMethodName, metadata, timeout);
    }

    public void Dispose() => _deadlineSource?.Dispose();

    /// <summary>Why the call was cancelled: its deadline passed (as etcd's gateway says it), or its client left.</summary>
    public RpcException Ended() =>
        _deadlineSource is { IsCancellationRequested: true } && !_http.RequestAborted.IsCancellationRequested
            ? new RpcException(new Status(StatusCode.DeadlineExceeded, "context deadline exceeded"))
            : new RpcException(new Status(StatusCode.Cancelled, "context canceled"));

    protected override string MethodCore => _method;

    protected override string HostCore => _http.Request.Host.Value ?? "";

    protected override string PeerCore => _http.Connection.RemoteIpAddress is { } address
        ? (address.AddressFamily == AddressFamily.InterNetworkV6 ? $"ipv6:[{address}]:" : $"ipv4:{address}:") + _http.Connection.RemotePort.ToString(CultureInfo.InvariantCulture)
        : "unknown";

    protected override DateTime DeadlineCore => _deadline;

    protected override Metadata RequestHeadersCore => _requestHeaders;

    protected override CancellationToken CancellationTokenCore => _cancellation;

    protected override Metadata ResponseTrailersCore { get; } = [];

    protected override Status StatusCore { get; set; }

    protected override WriteOptions? WriteOptionsCore { get; set; }

    protected override AuthContext AuthContextCore { get; } = new(null, []);

    protected override IDictionary<object, object> UserStateCore => _userState;

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
        throw new NotSupportedException("the proxy does not propagate calls");

    /// <summary>Response metadata becomes <c>Grpc-Metadata-*</c> headers, as grpc-gateway writes it.</summary>
    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders)
    {
        if (!_http.Response.HasStarted)
        {
            foreach (var entry in responseHeaders)
            {
                _http.Response.Headers.Append(MetadataPrefix + entry.Key, entry.IsBinary ? Convert.ToBase64String(entry.ValueBytes) : entry.Value);
            }
        }

        return Task.CompletedTask;
    }

    private static void AddAll(Metadata metadata, string key, StringValues values)
    {
        foreach (var value in values)
        {
            try
            {
                if (key.EndsWith(Metadata.BinaryHeaderSuffix, StringComparison.Ordinal))
                {
                    metadata.Add(key, Convert.FromBase64String(value ?? ""));
                }
                else
                {
                    metadata.Add(key, value ?? "");
                }
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"header {Truncated(key)} cannot be sent as gRPC metadata"));
            }
        }
    }

    /// <summary>A gRPC timeout (<c>100m</c>, <c>5S</c>: at most 8 digits and a unit), as grpc-gateway reads the header.</summary>
    private static TimeSpan Timeout(string value)
    {
        if (value.Length is >= 2 and <= 9 && long.TryParse(value.AsSpan(0, value.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
        {
            TimeSpan? timeout = value[^1] switch
            {
                'H' => TimeSpan.FromHours(amount),
                'M' => TimeSpan.FromMinutes(amount),
                'S' => TimeSpan.FromSeconds(amount),
                'm' => TimeSpan.FromMilliseconds(amount),
                'u' => TimeSpan.FromMicroseconds(amount),
                'n' => TimeSpan.FromTicks(amount / 100),
                _ => null,
            };
            if (timeout is { } parsed)
            {
                return parsed;
            }
        }

        throw new RpcException(new Status(StatusCode.InvalidArgument, "invalid grpc-timeout: " + Truncated(value)));
    }

    private static string Truncated(string text) => text.Length <= 40 ? text : text[..40] + "...";
}
