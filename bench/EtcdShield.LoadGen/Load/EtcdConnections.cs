using System.Net.Security;
using System.Security.Authentication;
using EtcdShield.LoadGen.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Net.Client;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// The client side's connections to one target: one <see cref="GrpcChannel"/> per TCP connection, each with its own
/// <see cref="SocketsHttpHandler"/> limited to a single HTTP/2 connection, so "4 connections" means four TCP (and TLS)
/// connections carrying all the clients' streams, as four clientv3 instances would.
/// </summary>
internal sealed class EtcdConnections : IDisposable
{
    private readonly GrpcChannel[] _channels;
    private readonly KV.KVClient[] _kv;
    private readonly Watch.WatchClient[] _watch;
    private readonly Lease.LeaseClient[] _lease;

    private EtcdConnections(GrpcChannel[] channels)
    {
        _channels = channels;
        _kv = [.. channels.Select(c => new KV.KVClient(c))];
        _watch = [.. channels.Select(c => new Watch.WatchClient(c))];
        _lease = [.. channels.Select(c => new Lease.LeaseClient(c))];
    }

    public int Count => _channels.Length;

    public static EtcdConnections Open(Uri endpoint, int count, BenchPki pki)
    {
        var channels = new GrpcChannel[count];
        for (var i = 0; i < count; i++)
        {
            var handler = new SocketsHttpHandler
            {
                // One connection per channel: more streams than the server allows queue rather than open another.
                EnableMultipleHttp2Connections = false,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                ConnectTimeout = TimeSpan.FromSeconds(10),
            };
            if (endpoint.Scheme == Uri.UriSchemeHttps)
            {
                handler.SslOptions = new SslClientAuthenticationOptions
                {
                    EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                    ClientCertificates = [pki.ClientCertificate],
                    RemoteCertificateValidationCallback = (_, certificate, _, errors) => pki.IssuedServer(certificate, errors),
                };
            }

            channels[i] = GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
            {
                HttpHandler = handler,
                DisposeHttpClient = true,
                MaxReceiveMessageSize = null,
            });
        }

        return new EtcdConnections(channels);
    }

    /// <summary>The KV client of the connection that <paramref name="client"/> is assigned to (round robin).</summary>
    public KV.KVClient Kv(int client) => _kv[client % _kv.Length];

    public Watch.WatchClient Watch(int watcher) => _watch[watcher % _watch.Length];

    public Lease.LeaseClient Lease(int stream) => _lease[stream % _lease.Length];

    public Maintenance.MaintenanceClient Maintenance(int client) => new(_channels[client % _channels.Length]);

    /// <summary>For calls made with a method of our own marshalling (a snapshot counted, not parsed).</summary>
    public Grpc.Core.CallInvoker Invoker(int client) => _channels[client % _channels.Length].CreateCallInvoker();

    /// <summary>Connects and handshakes every connection before anything is timed.</summary>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        await Task.WhenAll(_channels.Select(c => c.ConnectAsync(cancellationToken))).ConfigureAwait(false);
        await Task.WhenAll(_kv.Select(kv => kv.RangeAsync(
            new RangeRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("/bench/connect"), Serializable = true },
            deadline: DateTime.UtcNow.AddSeconds(30),
            cancellationToken: cancellationToken).ResponseAsync)).ConfigureAwait(false);
    }

    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }
}
