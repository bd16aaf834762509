using System.Net.Security;
using EtcdShield.Configuration;
using EtcdShield.Relay;
using Yarp.ReverseProxy.Forwarder;

namespace EtcdShield.Gateway;

/// <summary>
/// etcd's members as destinations of plain HTTP requests forwarded with YARP: the same members, sockets and TLS as the
/// gRPC channel (<see cref="UpstreamDialer"/>), with its pick_first failover: the member that answered last is asked first,
/// and one that cannot be reached before it answers hands the request to the next, each member once.
/// </summary>
internal sealed partial class UpstreamHttp : IDisposable
{
    // Above etcd's own wait on /health (its request timeout, 7s by default), so etcd's answer gets through, and
    // bounded, so a member that accepts connections but never answers cannot hold the request.
    private static readonly ForwarderRequestConfig Config = new() { ActivityTimeout = TimeSpan.FromSeconds(10) };

    private readonly IHttpForwarder _forwarder;
    private readonly HttpMessageInvoker _invoker;
    private readonly string[] _members;
    private readonly ILogger _logger;
    private int _current;

    public UpstreamHttp(ShieldOptions options, IHttpForwarder forwarder, ILogger<UpstreamHttp> logger)
        : this(options, forwarder, Handler(options), logger)
    {
    }

    /// <summary>For the unit tests: a scripted <paramref name="forwarder"/>, which never sends through <paramref name="handler"/>.</summary>
    internal UpstreamHttp(ShieldOptions options, IHttpForwarder forwarder, HttpMessageHandler handler, ILogger logger)
    {
        _forwarder = forwarder;
        _invoker = new HttpMessageInvoker(handler, disposeHandler: true);
        // http:// for every member: the dialer puts TLS on the connection itself, with the member's host name.
        _members = [.. UpstreamMember.From(options.UpstreamEndpoints).Select(m => "http://" + m.Authority)];
        _logger = logger;
    }

    /// <summary>
    /// Forwards the request and etcd's answer, unchanged but for the headers <see cref="EtcdTransformer"/> names. The
    /// error is that of the last member tried; with an error and no response started, no member answered.
    /// </summary>
    public async ValueTask<ForwarderError> ForwardAsync(HttpContext context)
    {
        var first = Volatile.Read(ref _current);
        var error = ForwarderError.None;
        for (var i = 0; i < _members.Length; i++)
        {
            var member = (first + i) % _members.Length;
            error = await _forwarder.SendAsync(context, _members[member], _invoker, Config, EtcdTransformer.Instance).ConfigureAwait(false);
            if (error == ForwarderError.None)
            {
                Volatile.Write(ref _current, member);
                return error;
            }

            if (!Unanswered(error) || context.Response.HasStarted || context.RequestAborted.IsCancellationRequested)
            {
                return error;
            }

            Log.UpstreamMemberUnreachable(_logger, _members[member], context.Request.Path.Value ?? "", error);
            // The forwarder set its own 502 or 504; the next member answers on a clean response.
            context.Response.Clear();
        }

        return error;
    }

    public void Dispose() => _invoker.Dispose();

    /// <summary>
    /// The member was not reached, or sent no answer's headers in time: the client has heard nothing yet, and these
    /// GET and HEAD requests change nothing in etcd, so the next member may be asked the same.
    /// </summary>
    private static bool Unanswered(ForwarderError error) => error is ForwarderError.Request or ForwarderError.RequestTimedOut;

    /// <summary>As YARP's direct forwarding recommends: no proxy, redirects, cookies, decompression or tracing headers.</summary>
    private static SocketsHttpHandler Handler(ShieldOptions options)
    {
        var dialer = new UpstreamDialer(options);
        return new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            UseCookies = false,
            ActivityHeadersPropagator = null,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            // Each member has an authority of its own, so the connection asked for names the member to dial.
            ConnectCallback = (context, cancellationToken) =>
                UpstreamMember.Find(dialer.Members, context.DnsEndPoint.Host, context.DnsEndPoint.Port) is { } member
                    ? dialer.ConnectAsync(member, SslApplicationProtocol.Http11, cancellationToken)
                    : throw new InvalidOperationException($"No etcd member is {context.DnsEndPoint}."),
        };
    }

    /// <summary>
    /// What etcd must not see, or the client must not hear, from a forwarded request. etcd sees the proxy: its own
    /// Host, and neither the client's Authorization nor (as YARP's empty transformer already does) hop-by-hop or
    /// X-Forwarded-* headers. The client hears etcd's status, body and content type, but not etcd's CORS headers:
    /// etcd allows every origin by default, and whether a browser may read the answer is --cors-allowed-origins'.
    /// </summary>
    internal sealed class EtcdTransformer : HttpTransformer
    {
        public static readonly EtcdTransformer Instance = new();

        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
            proxyRequest.Headers.Host = null;
            proxyRequest.Headers.Authorization = null;
        }

        public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            var copy = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
            var headers = httpContext.Response.Headers;
            foreach (var name in headers.Keys.Where(k => k.StartsWith("Access-Control-", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                headers.Remove(name);
            }

            return copy;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.UpstreamMemberUnreachable, EventName = nameof(EventIds.UpstreamMemberUnreachable), Level = LogLevel.Warning, Message = "etcd member {Member} did not answer {Path}: {Error}")]
        public static partial void UpstreamMemberUnreachable(ILogger logger, string member, string path, ForwarderError error);
    }
}
