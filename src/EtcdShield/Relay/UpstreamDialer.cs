using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using EtcdShield.Configuration;

namespace EtcdShield.Relay;

/// <summary>
/// Opens every connection the proxy makes to etcd, for the gRPC channel and the forwarded HTTP endpoints alike:
/// TCP or a unix socket, then TLS when the members are https or unixs (<see cref="UpstreamTls"/>, with the
/// member's own host name, so one handler can reach members whose certificates name different hosts). A socket
/// file that is missing or refuses fails like a closed port, and the caller moves to the next member.
/// </summary>
internal sealed partial class UpstreamDialer
{
    /// <summary>Per member, so that one that never answers cannot use up the time of the others.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// After no member accepted, further connections fail at once for this long, as gRPC's pick_first fails its
    /// waiting calls in TRANSIENT_FAILURE (its first backoff is 1 s): the HTTP/2 pool fails one waiting call per
    /// failed attempt, so a storm of calls while every member hangs would otherwise wait one walk each, in turn.
    /// </summary>
    public static readonly TimeSpan FailFastFor = TimeSpan.FromSeconds(1);

    private readonly SslClientAuthenticationOptions? _tls;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private int _current;
    private RecentFailure? _recentFailure;

    /// <param name="logger">Told of each member <see cref="ConnectAnyAsync"/> passes over; the gateway, which walks the members itself, logs its own.</param>
    public UpstreamDialer(ShieldOptions options, ILogger? logger = null, TimeProvider? time = null)
    {
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        Members = UpstreamMember.From(options.UpstreamEndpoints);
        _tls = UpstreamTls.ClientOptions(options);
    }

    public IReadOnlyList<UpstreamMember> Members { get; }

    /// <summary>
    /// pick_first: a connection to the member that accepted the last one, or else to the next that accepts, each
    /// member once. Fails with every member's reason when none accepts.
    /// </summary>
    public async ValueTask<Stream> ConnectAnyAsync(SslApplicationProtocol protocol, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _recentFailure) is { } recent && _time.GetElapsedTime(recent.At) < FailFastFor)
        {
            // A new exception each time: one exception object thrown on many threads at once gets mixed stack traces.
            throw new IOException($"No etcd member accepted a connection less than {FailFastFor.TotalSeconds:0}s ago: {recent.Failure.Message}", recent.Failure);
        }

        var first = Volatile.Read(ref _current);
        List<Exception>? failures = null;
        for (var i = 0; i < Members.Count; i++)
        {
            var index = (first + i) % Members.Count;
            try
            {
                var stream = await ConnectAsync(Members[index], protocol, cancellationToken).ConfigureAwait(false);
                Volatile.Write(ref _current, index);
                // A TLS handshake already proved the member answers; a plain connection proves nothing yet.
                return _tls is null && Members.Count > 1
                    ? new FirstWordStream(stream, () => Interlocked.CompareExchange(ref _current, (index + 1) % Members.Count, index))
                    : stream;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is SocketException or IOException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
            {
                Log.UpstreamMemberSkipped(_logger, Members[index].Endpoint.OriginalString, e.Message);
                (failures ??= []).Add(new IOException($"etcd member {Members[index].Endpoint.OriginalString}: {e.Message}", e));
            }
        }

        Exception failure = failures is [var only] ? only : new AggregateException("No etcd member accepted a connection.", failures!);
        Volatile.Write(ref _recentFailure, new RecentFailure(_time.GetTimestamp(), failure));
        throw failure;
    }

    private sealed record RecentFailure(long At, Exception Failure);

    /// <summary>A connection to <paramref name="member"/>, with TLS already negotiated when the members use it.</summary>
    public async ValueTask<Stream> ConnectAsync(UpstreamMember member, SslApplicationProtocol protocol, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ConnectTimeout);
        var socket = member.SocketPath is null
            ? new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true }
            : new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            EndPoint target = member.SocketPath is { } path ? new UnixDomainSocketEndPoint(path) : new DnsEndPoint(member.Host, member.Port);
            await socket.ConnectAsync(target, timeout.Token).ConfigureAwait(false);
            var network = new NetworkStream(socket, ownsSocket: true);
            if (_tls is null)
            {
                return network;
            }

            var tls = new SslStream(network, leaveInnerStreamOpen: false);
            try
            {
                await tls.AuthenticateAsClientAsync(ForMember(member, protocol), timeout.Token).ConfigureAwait(false);
                return tls;
            }
            catch
            {
                await tls.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private SslClientAuthenticationOptions ForMember(UpstreamMember member, SslApplicationProtocol protocol) => new()
    {
        TargetHost = member.TlsHostName,
        ApplicationProtocols = [protocol],
        EnabledSslProtocols = _tls!.EnabledSslProtocols,
        CertificateChainPolicy = _tls.CertificateChainPolicy,
        ClientCertificates = _tls.ClientCertificates,
        CertificateRevocationCheckMode = _tls.CertificateRevocationCheckMode,
    };

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.UpstreamMemberSkipped, EventName = nameof(EventIds.UpstreamMemberSkipped), Level = LogLevel.Warning, Message = "etcd member {Member} did not accept a connection ({Reason}); the next member is tried")]
        public static partial void UpstreamMemberSkipped(ILogger logger, string member, string reason);
    }
}
