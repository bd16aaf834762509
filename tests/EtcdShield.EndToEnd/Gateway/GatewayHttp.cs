using System.Net;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Gateway;

/// <summary>
/// Raw JSON requests to an etcd JSON gateway (etcd's own or the proxy's) over mutual TLS, with the HTTP version
/// chosen per request and no fallback, so a test that asks for HTTP/2 gets HTTP/2 or fails. Answers are kept as
/// the exact text the server wrote.
/// </summary>
internal sealed class GatewayHttp : IDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    private readonly HttpClient _client;

    /// <param name="baseUrl">The client URL, e.g. <c>https://127.0.0.1:41234</c>.</param>
    /// <param name="client">The certificate presented; the default allowed test client when null.</param>
    public GatewayHttp(string baseUrl, TestPki pki, CertificatePaths? client = null)
    {
        BaseUrl = baseUrl.TrimEnd('/');
        _client = new HttpClient(GrpcClients.Handler(pki, client ?? ShieldServer.DefaultClient(pki)), disposeHandler: true)
        {
            Timeout = RequestTimeout,
        };
    }

    public string BaseUrl { get; }

    /// <summary>POSTs <paramref name="body"/> (sent exactly as given) and reads the whole answer.</summary>
    /// <param name="headers">Extra request headers, sent without validation (e.g. <c>Authorization</c>).</param>
    public async Task<GatewayAnswer> PostAsync(
        string path,
        string body,
        Version? version = null,
        IReadOnlyDictionary<string, string>? headers = null,
        HttpMethod? method = null)
    {
        using var request = Request(path, body, version, headers, method ?? HttpMethod.Post);
        using var response = await _client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return GatewayAnswer.From(response, text);
    }

    /// <summary>POSTs <paramref name="body"/> (one or more JSON messages) and returns as soon as the answer's headers arrive, to read the stream line by line.</summary>
    public async Task<GatewayStream> OpenStreamAsync(string path, string body, Version? version = null)
    {
        var request = Request(path, body, version, headers: null, HttpMethod.Post);
        try
        {
            var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            return new GatewayStream(request, response, await response.Content.ReadAsStreamAsync());
        }
        catch
        {
            request.Dispose();
            throw;
        }
    }

    /// <summary>
    /// POSTs a body whose JSON messages the test writes one at a time through <paramref name="body"/> while it reads the
    /// answers: a bidirectional stream over HTTP/2. Completes when the answer's headers arrive, so write the first message
    /// before awaiting it.
    /// </summary>
    public async Task<GatewayStream> OpenDuplexAsync(string path, DuplexBody body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, BaseUrl + path)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = body,
        };
        try
        {
            var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            return new GatewayStream(request, response, await response.Content.ReadAsStreamAsync());
        }
        catch
        {
            request.Dispose();
            throw;
        }
    }

    public void Dispose() => _client.Dispose();

    private HttpRequestMessage Request(string path, string body, Version? version, IReadOnlyDictionary<string, string>? headers, HttpMethod method)
    {
        var request = new HttpRequestMessage(method, BaseUrl + path)
        {
            Version = version ?? HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        if (method != HttpMethod.Get)
        {
            request.Content = new StringContent(body, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), "application/json");
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }
}

/// <summary>A whole gateway answer: status, media type, the body as the server wrote it, and the HTTP version it came over.</summary>
internal sealed record GatewayAnswer(HttpStatusCode Status, string? MediaType, string Body, Version Version, IReadOnlyDictionary<string, string> Headers)
{
    public static GatewayAnswer From(HttpResponseMessage response, string body)
    {
        var headers = response.Headers.Concat(response.Content.Headers)
            .ToDictionary(h => h.Key, h => string.Join(", ", h.Value), StringComparer.OrdinalIgnoreCase);
        return new GatewayAnswer(response.StatusCode, response.Content.Headers.ContentType?.MediaType, body, response.Version, headers);
    }

    /// <summary>The body parsed, for assertions on single fields; differential comparisons use <see cref="Body"/> itself.</summary>
    public JsonElement Json()
    {
        using var document = JsonDocument.Parse(Body);
        return document.RootElement.Clone();
    }

    public override string ToString() => $"{(int)Status} {MediaType} HTTP/{Version} {Body}";
}

/// <summary>An open streaming answer (watch, keep-alive), read one newline-terminated message at a time.</summary>
internal sealed class GatewayStream : IDisposable
{
    private readonly HttpRequestMessage _request;
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;
    private readonly List<string> _lines = [];

    public GatewayStream(HttpRequestMessage request, HttpResponseMessage response, Stream body)
    {
        _request = request;
        _response = response;
        _reader = new StreamReader(body, Encoding.UTF8);
    }

    public HttpStatusCode Status => _response.StatusCode;

    public string? MediaType => _response.Content.Headers.ContentType?.MediaType;

    public Version Version => _response.Version;

    /// <summary>Whether an HTTP/1.1 answer came with <c>Transfer-Encoding: chunked</c>.</summary>
    public bool Chunked => _response.Headers.TransferEncodingChunked == true;

    /// <summary>Every line read so far.</summary>
    public IReadOnlyList<string> Lines => _lines;

    /// <summary>The next line; null when the server ended the stream. Throws <see cref="TimeoutException"/> naming what was read when nothing comes in time.</summary>
    public async Task<string?> ReadLineAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            var line = await _reader.ReadLineAsync(deadline.Token);
            if (line is not null)
            {
                _lines.Add(line);
            }

            return line;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"No line within {timeout.TotalSeconds:0.#} s; read so far:{Environment.NewLine}{string.Join(Environment.NewLine, _lines)}");
        }
    }

    /// <summary>Reads lines until one satisfies <paramref name="condition"/>; fails if the stream ends or stalls first.</summary>
    public async Task<string> ReadUntilAsync(Func<string, bool> condition, TimeSpan timeout)
    {
        while (true)
        {
            var line = await ReadLineAsync(timeout)
                ?? throw new InvalidOperationException($"The stream ended before the awaited line; read:{Environment.NewLine}{string.Join(Environment.NewLine, _lines)}");
            if (condition(line))
            {
                return line;
            }
        }
    }

    public void Dispose()
    {
        _reader.Dispose();
        _response.Dispose();
        _request.Dispose();
    }
}

/// <summary>A request body written message by message while the answer is read (see <see cref="GatewayHttp.OpenDuplexAsync"/>).</summary>
internal sealed class DuplexBody : HttpContent
{
    private readonly Channel<string> _messages = Channel.CreateUnbounded<string>();

    /// <summary>Sends one JSON message now (flushed as it is written).</summary>
    public ValueTask WriteAsync(string json) => _messages.Writer.WriteAsync(json);

    /// <summary>Ends the body: the stream's half-close.</summary>
    public void Complete() => _messages.Writer.TryComplete();

    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        await foreach (var message in _messages.Reader.ReadAllAsync())
        {
            await stream.WriteAsync(Encoding.UTF8.GetBytes(message));
            await stream.FlushAsync();
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
