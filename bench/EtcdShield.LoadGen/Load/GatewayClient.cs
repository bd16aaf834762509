using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Authentication;
using EtcdShield.LoadGen.Infrastructure;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// etcd's HTTP/JSON gateway as its clients use it (etcd3gw, curl, most gateway libraries): JSON POSTs over HTTP/1.1
/// keep-alive connections. HTTP/1.1 carries one request at a time per connection, so one pool that may open a
/// connection per closed-loop client is what N concurrent clients of those libraries amount to.
/// </summary>
internal sealed class GatewayClient : IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    private readonly HttpClient _http;

    private GatewayClient(HttpClient http) => _http = http;

    public static GatewayClient Open(Uri endpoint, int connections, BenchPki pki)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
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

        return new GatewayClient(new HttpClient(handler, disposeHandler: true)
        {
            BaseAddress = endpoint,
            // Exact, so ALPN offers http/1.1 only and no server can upgrade the load to HTTP/2.
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = LoadSettings.CallDeadline,
        });
    }

    /// <summary>One POST of a prebuilt JSON body; the whole answer is read, as a client must before its next request.</summary>
    /// <exception cref="HttpRequestException">The connection failed.</exception>
    /// <exception cref="TaskCanceledException">No answer within <see cref="LoadSettings.CallDeadline"/>.</exception>
    public async Task<GatewayAnswer> PostAsync(string path, byte[] body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = Json;
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead).ConfigureAwait(false);
        return new GatewayAnswer(response.StatusCode, await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false));
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>A gateway answer: its status and its body.</summary>
internal readonly record struct GatewayAnswer(HttpStatusCode Status, byte[] Body);
