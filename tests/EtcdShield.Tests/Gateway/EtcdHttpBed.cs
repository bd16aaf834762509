using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Audit;
using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Gateway;
using EtcdShield.Relay;
using EtcdShield.Reload;
using EtcdShield.Tls;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Forwarder;

namespace EtcdShield.Tests.Gateway;

/// <summary>
/// <see cref="EtcdHttpEndpoints"/> over two etcd members that a <see cref="ScriptedForwarder"/> plays, for the
/// client "app" of a policy the test can rewrite and reload, with an audit log the test reads.
/// </summary>
internal sealed class EtcdHttpBed : IDisposable
{
    public const string First = "http://127.0.0.1:2379";
    public const string Second = "http://127.0.0.1:22379";

    private readonly string _dir = Directory.CreateTempSubdirectory("shield-http").FullName;
    private readonly string _policyFile;
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly X509Certificate2 _ca;
    private readonly AuditLog _audit;
    private readonly AdmittedClient _connection = new(null);

    public EtcdHttpBed()
    {
        _policyFile = Path.Combine(_dir, "policy.yaml");
        File.WriteAllText(_policyFile, Policy("app"));
        PolicyFiles = new ReloadableFiles<AccessPolicy>("policy", [_policyFile], () => new AccessPolicy(PolicyFile.Load(_policyFile), _policyFile));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        _ca = new CertificateRequest("CN=http-ca", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var trust = new ReloadableFiles<ClientTrust>("client trust", [], () => new ClientTrust([_ca], []));
        _connection.Admit(new ClientIdentity("app", [], [], [], Convert.ToHexString(SHA256.HashData(_ca.RawData))), [CertificateId.OfAnchor(_ca)]);

        var meters = _services.GetRequiredService<IMeterFactory>();
        Requests = new MetricCollector<long>(meters, RelayMetrics.MeterName, "etcdshield.requests");
        _audit = new AuditLog(new ShieldOptions { AuditLog = Path.Combine(_dir, "audit.log") }, meters, NullLogger<AuditLog>.Instance);
        _audit.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        var options = new ShieldOptions { UpstreamEndpoints = [new Uri(First), new Uri(Second + "/")] };
        Endpoints = new EtcdHttpEndpoints(
            new CallerLookup(PolicyFiles, trust),
            new AccessGate(KeyRedaction.None, new AuthorizationMetrics(meters), NullLogger<AccessGate>.Instance),
            new UpstreamHttp(options, Forwarder, new HttpClientHandler(), NullLogger.Instance),
            new RelayMetrics(meters),
            _audit,
            new FakeTimeProvider());
    }

    public ScriptedForwarder Forwarder { get; } = new();

    public ReloadableFiles<AccessPolicy> PolicyFiles { get; }

    public EtcdHttpEndpoints Endpoints { get; }

    public MetricCollector<long> Requests { get; }

    /// <summary>A request from the bed's client on its connection, with a response body the test can read.</summary>
    public DefaultHttpContext Request(string path, string method = "GET", string query = "")
    {
        var http = new DefaultHttpContext();
        http.Features.Set<IConnectionItemsFeature>(new ConnectionItems(_connection));
        http.Request.Method = method;
        http.Request.Path = path;
        http.Request.QueryString = new QueryString(query);
        http.Response.Body = new MemoryStream();
        return http;
    }

    /// <summary>Sends <paramref name="http"/> through the endpoints as <see cref="EtcdHttpEndpoints.Map"/> would.</summary>
    public Task SendAsync(HttpContext http) => Endpoints.HandleAsync(http, EtcdHttpEndpoints.MethodName(http.Request.Path)!);

    /// <summary>Rewrites the policy so that it names only <paramref name="commonName"/>, and reloads it.</summary>
    public void AdmitOnly(string commonName)
    {
        File.WriteAllText(_policyFile, Policy(commonName));
        Assert.Equal(ReloadOutcome.Reloaded, PolicyFiles.ReloadIfChanged());
    }

    public static string Body(HttpContext http) => System.Text.Encoding.UTF8.GetString(((MemoryStream)http.Response.Body).ToArray());

    /// <summary>
    /// The audit records, once <paramref name="count"/> are written. Polled: the audit log writes in the background,
    /// and stopping it at once could stop it before its writer ever ran.
    /// </summary>
    public async Task<IReadOnlyList<System.Text.Json.JsonElement>> AuditedAsync(int count = 1)
    {
        var path = Path.Combine(_dir, "audit.log");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var lines = File.Exists(path) ? ReadLines(path) : [];
            if (lines.Count >= count || DateTime.UtcNow > deadline)
            {
                return [.. lines.Select(line => System.Text.Json.JsonDocument.Parse(line).RootElement)];
            }

            await Task.Delay(10);
        }
    }

    private static List<string> ReadLines(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        var lines = new List<string>();
        while (reader.ReadLine() is { } line)
        {
            if (line.EndsWith('}'))
            {
                lines.Add(line);
            }
        }

        return lines;
    }

    public void Dispose()
    {
        _audit.StopAsync(CancellationToken.None).GetAwaiter().GetResult();
        _audit.Dispose();
        Requests.Dispose();
        _services.Dispose();
        _ca.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static string Policy(string commonName) => $$"""
        identities:
          - name: {{commonName}}
            match: { cn: {{commonName}} }
            methods: [Maintenance/Status]
        """;

    private sealed class ConnectionItems(AdmittedClient client) : IConnectionItemsFeature
    {
        public IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?> { [AdmittedClient.ItemKey] = client };
    }
}

/// <summary>
/// etcd members as a test scripts them: each destination either fails before answering with the error the test
/// gave it, or answers with a status and a body, as YARP's forwarder would copy them.
/// </summary>
internal sealed class ScriptedForwarder : IHttpForwarder
{
    private readonly Dictionary<string, ForwarderError> _failures = [];

    /// <summary>The destinations asked, in order.</summary>
    public List<string> Asked { get; } = [];

    public int Status { get; set; } = StatusCodes.Status200OK;

    public string Body { get; set; } = """{"etcdserver":"3.5.17","etcdcluster":"3.5.0"}""";

    public void Fail(string destination, ForwarderError error) => _failures[destination] = error;

    public void Recover(string destination) => _failures.Remove(destination);

    public ValueTask<ForwarderError> SendAsync(HttpContext context, string destinationPrefix, HttpMessageInvoker httpClient, ForwarderRequestConfig requestConfig, HttpTransformer transformer) =>
        SendAsync(context, destinationPrefix, httpClient, requestConfig, transformer, CancellationToken.None);

    public async ValueTask<ForwarderError> SendAsync(HttpContext context, string destinationPrefix, HttpMessageInvoker httpClient, ForwarderRequestConfig requestConfig, HttpTransformer transformer, CancellationToken cancellationToken)
    {
        // As YARP refuses to: a second attempt must start on a clean response.
        Assert.False(context.Response.StatusCode != StatusCodes.Status200OK || context.Response.HasStarted, "forwarded on a response already set");
        Asked.Add(destinationPrefix);
        if (_failures.TryGetValue(destinationPrefix, out var error))
        {
            context.Response.StatusCode = error == ForwarderError.RequestTimedOut ? StatusCodes.Status504GatewayTimeout : StatusCodes.Status502BadGateway;
            return error;
        }

        context.Response.StatusCode = Status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(Body, cancellationToken);
        return ForwarderError.None;
    }
}
