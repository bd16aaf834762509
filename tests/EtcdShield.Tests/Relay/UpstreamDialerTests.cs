using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Configuration;
using EtcdShield.Relay;

namespace EtcdShield.Tests.Relay;

/// <summary>
/// Members as an attacker on the machine, or a stopped etcd, present them: a socket whose server holds a certificate of
/// the trusted CA for another name (a socket path is no identity), and one that accepts and then never
/// answers the TLS handshake (a stopped etcd, or a squatter), which must not hold the dialer past its bound.
/// </summary>
public sealed class UpstreamDialerTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("etcdshield-dialer-tls-");
    private readonly X509Certificate2 _ca;
    private readonly string _caFile;

    public UpstreamDialerTests()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=dialer test CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        _ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        _caFile = Path.Combine(_dir.FullName, "ca.pem");
        File.WriteAllText(_caFile, _ca.ExportCertificatePem());
    }

    public void Dispose()
    {
        _ca.Dispose();
        _dir.Delete(recursive: true);
    }

    private X509Certificate2 ServerCertificate(string dnsName)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + dnsName, key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(dnsName);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var leaf = request.Create(_ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(10), [1, 2, 3, 4]);
        using var withKey = leaf.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    private (Socket Listener, string Path) Listen(string name)
    {
        var path = Path.Combine(_dir.FullName, name);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        return (listener, path);
    }

    private static async Task ServeTlsAsync(Socket listener, X509Certificate2 certificate)
    {
        using var accepted = await listener.AcceptAsync();
        await using var tls = new SslStream(new NetworkStream(accepted, ownsSocket: false));
        try
        {
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificate = certificate,
                ApplicationProtocols = [SslApplicationProtocol.Http2],
            });
            // Hold the connection until the client is done with it.
            _ = await tls.ReadAsync(new byte[1]);
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
        {
            // The client refused us: what the name check is for.
        }
    }

    private UpstreamDialer Dialer(params string[] sockets) => new(new ShieldOptions
    {
        UpstreamEndpoints = [.. sockets.Select(s => new Uri("unixs://" + s))],
        UpstreamTrustedCaFile = _caFile,
    });

    [Fact]
    public async Task A_certificate_of_the_trusted_ca_for_localhost_is_accepted_with_h2()
    {
        var (listener, path) = Listen("good.sock");
        using var _ = listener;
        using var certificate = ServerCertificate("localhost");
        var server = ServeTlsAsync(listener, certificate);

        await using (var stream = await Dialer(path).ConnectAnyAsync(SslApplicationProtocol.Http2, CancellationToken.None))
        {
            Assert.Equal(SslApplicationProtocol.Http2, ((SslStream)stream).NegotiatedApplicationProtocol);
        }

        await server;
    }

    [Fact]
    public async Task A_certificate_of_the_trusted_ca_for_another_name_is_refused_over_a_socket()
    {
        var (listener, path) = Listen("impostor.sock");
        using var _ = listener;
        using var certificate = ServerCertificate("impostor.example");
        var server = ServeTlsAsync(listener, certificate);

        var failure = await Assert.ThrowsAsync<IOException>(async () => await Dialer(path).ConnectAnyAsync(SslApplicationProtocol.Http2, CancellationToken.None));

        Assert.IsType<System.Security.Authentication.AuthenticationException>(failure.InnerException);
        await server;
    }

    [Fact]
    public async Task A_member_that_accepts_and_never_answers_the_handshake_is_passed_over_for_the_next()
    {
        var (silent, silentPath) = Listen("silent.sock");
        using var _ = silent;
        var (good, goodPath) = Listen("next.sock");
        using var __ = good;
        using var certificate = ServerCertificate("localhost");
        var server = ServeTlsAsync(good, certificate);

        // The silent member's listen queue takes the connection; nobody ever reads the ClientHello.
        await using (var stream = await Dialer(silentPath, goodPath).ConnectAnyAsync(SslApplicationProtocol.Http2, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(60)))
        {
            Assert.True(((SslStream)stream).IsAuthenticated);
        }

        await server;
    }

    [Fact]
    public async Task A_storm_of_calls_while_every_member_hangs_fails_unavailable_together_not_one_handshake_timeout_each()
    {
        // gRPC's pick_first fails every waiting call once its members failed (TRANSIENT_FAILURE); the HTTP/2 pool
        // fails one waiting call per failed connection attempt, so without the dialer failing fast for a while,
        // the twentieth call waited twenty handshake timeouts.
        var (silent, silentPath) = Listen("hung.sock");
        using var _ = silent;
        using var channel = new UpstreamChannel(
            new ShieldOptions { UpstreamEndpoints = [new Uri("unixs://" + silentPath)], UpstreamTrustedCaFile = _caFile },
            Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        var kv = new EtcdShield.Protocol.Etcdserverpb.KV.KVClient(channel.Invoker);

        var codes = await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
        {
            try
            {
                await kv.RangeAsync(new EtcdShield.Protocol.Etcdserverpb.RangeRequest(), deadline: DateTime.UtcNow.AddSeconds(60));
                return Grpc.Core.StatusCode.OK;
            }
            catch (Grpc.Core.RpcException e)
            {
                return e.StatusCode;
            }
        }));

        Assert.All(codes, code => Assert.Equal(Grpc.Core.StatusCode.Unavailable, code));
    }

    [Fact]
    public async Task A_plain_socket_that_accepted_but_never_said_a_word_is_not_dialled_first_again()
    {
        // Without TLS there is no handshake to time out: a stopped etcd's listen queue accepts, HTTP/2 waits,
        // and only the keep-alive ping ends the connection. pick_first stuck to it: the next dial began there again.
        var (silent, silentPath) = Listen("mute.sock");
        using var _ = silent;
        var (next, nextPath) = Listen("speaks.sock");
        using var __ = next;
        var dialer = new UpstreamDialer(new ShieldOptions { UpstreamEndpoints = [new Uri("unix://" + silentPath), new Uri("unix://" + nextPath)] });

        await (await dialer.ConnectAnyAsync(SslApplicationProtocol.Http2, CancellationToken.None)).DisposeAsync();
        await using var second = await dialer.ConnectAnyAsync(SslApplicationProtocol.Http2, CancellationToken.None);
        using var accepted = await next.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(accepted.Connected);
    }
}
