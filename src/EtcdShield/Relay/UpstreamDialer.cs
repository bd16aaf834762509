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

    private readonly SslClientAuthenticationOptions? _tls;
    private readonly ILogger _logger;
    private int _current;

    /// <param name="logger">Told of each member <see cref="ConnectAnyAsync"/> passes over; the gateway, which walks the members itself, logs its own.</param>
    public UpstreamDialer(ShieldOptions options, ILogger? logger = null)
    {
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
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
        var first = Volatile.Read(ref _current);
        List<Exception>? failures = null;
        for (var i = 0; i < Members.Count; i++)
        {
            var index = (first + i) % Members.Count;
            try
            {
                var stream = await ConnectAsync(Members[index], protocol, cancellationToken).ConfigureAwait(false);
                Volatile.Write(ref _current, index);
                return stream;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is SocketException or IOException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
            {
                Log.UpstreamMemberSkipped(_logger, Members[index].Endpoint.OriginalString, e.Message);
                (failures ??= []).Add(new IOException($"etcd member {Members[index].Endpoint.OriginalString}: {e.Message}", e));
            }
        }

        throw failures is [var only] ? only : new AggregateException("No etcd member accepted a connection.", failures!);
    }

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
