using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EtcdShield.Audit;
using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using EtcdShield.Reload;
using EtcdShield.Streams;
using EtcdShield.Tls;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Relay;

/// <summary>
/// The response path on its own, with no reload announced: a response that meets a policy newer than the one the
/// stream was judged under is held back until the stream is judged again.
/// </summary>
public sealed class StreamJudgeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-judge").FullName;
    private readonly string _policyFile;
    private readonly ReloadableFiles<AccessPolicy> _policy;
    private readonly IMeterFactory _meters = TestMeterFactory.Create();
    private readonly AuditLog _audit;
    private readonly CallScopes _scopes;
    private readonly List<CallScope> _open = [];
    private readonly X509Certificate2 _ca;
    private readonly TestCallContext _context = new();
    private readonly GrpcChannel _unused = GrpcChannel.ForAddress("http://127.0.0.1:1");
    private readonly Recording _client = new();
    private readonly Recording _etcd = new();

    public StreamJudgeTests()
    {
        _policyFile = Path.Combine(_dir, "policy.yaml");
        File.WriteAllText(_policyFile, Policy("{ prefix: /secret/, permission: read }, { prefix: /open/, permission: read }"));
        _policy = new ReloadableFiles<AccessPolicy>("policy", [_policyFile], () => new AccessPolicy(PolicyFile.Load(_policyFile), _policyFile));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        _ca = new CertificateRequest("CN=judge-ca", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var trust = new ReloadableFiles<ClientTrust>("client trust", [], () => new ClientTrust([_ca], []));
        _audit = new AuditLog(new ShieldOptions(), _meters, NullLogger<AuditLog>.Instance);
        var gate = new AccessGate(KeyRedaction.None, new AuthorizationMetrics(_meters), NullLogger<AccessGate>.Instance);
        var streams = new OpenStreams(new ShieldOptions(), _policy, trust, NullLogger<OpenStreams>.Instance);
        _scopes = new CallScopes(_unused.CreateCallInvoker(), new CallerLookup(_policy, trust), gate, streams, new RelayMetrics(_meters), _audit, TimeProvider.System, NullLogger.Instance, CancellationToken.None);

        var connection = new AdmittedClient(null);
        connection.Admit(new ClientIdentity("watcher", [], [], [], Convert.ToHexString(SHA256.HashData(_ca.RawData))), [CertificateId.OfAnchor(_ca)]);
        var http = new DefaultHttpContext();
        http.Features.Set<IConnectionItemsFeature>(new ConnectionItems(connection));
        _context.UserState["__HttpContext"] = http;
    }

    public void Dispose()
    {
        _open.ForEach(scope => scope.Dispose());
        _unused.Dispose();
        _audit.Dispose();
        _meters.Dispose();
        _ca.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static string Policy(string keys) => $$"""
        identities:
          - name: watcher
            match: { cn: watcher }
            keys: [{{keys}}]
        """;

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private StreamJudge<IMessage> Judge(SerializedStreamWriter<IMessage> client, SerializedStreamWriter<IMessage> etcd)
    {
        var scope = _scopes.Begin(RelayedMethod.All().Single(m => m.Name == "Watch/Watch"), _context);
        _open.Add(scope);
        return new StreamJudge<IMessage>(scope, null, client, etcd, rewriter: null);
    }

    private void Narrow(string keys)
    {
        File.WriteAllText(_policyFile, Policy(keys));
        Assert.Equal(ReloadOutcome.Reloaded, _policy.ReloadIfChanged());
    }

    /// <summary>A reload after which no identity of the policy matches the stream's caller.</summary>
    private void AdmitOnlySomeoneElse()
    {
        File.WriteAllText(_policyFile, """
            identities:
              - name: someone-else
                match: { cn: someone-else }
                keys: [{ prefix: /open/, permission: read }]
            """);
        Assert.Equal(ReloadOutcome.Reloaded, _policy.ReloadIfChanged());
    }

    [Fact]
    public async Task An_event_that_meets_a_narrower_policy_cancels_its_watch_instead_of_passing()
    {
        using var stop = new CancellationTokenSource();
        using var client = new SerializedStreamWriter<IMessage>(_client, shared: true);
        using var etcd = new SerializedStreamWriter<IMessage>(_etcd, shared: true);
        using var judge = Judge(client, etcd);
        Assert.Null(await judge.CreatingAsync(new WatchCreateRequest { Key = B("/secret/"), RangeEnd = B("/secret0") }, stop.Token));
        Assert.Null(await judge.CreatingAsync(new WatchCreateRequest { Key = B("/open/"), RangeEnd = B("/open0"), WatchId = 9 }, stop.Token));
        await judge.ForwardAsync(new WatchResponse { WatchId = 0, Created = true }, stop.Token);
        await judge.ForwardAsync(new WatchResponse { WatchId = 9, Created = true }, stop.Token);

        Narrow("{ prefix: /open/, permission: read }");
        await judge.ForwardAsync(new WatchResponse { WatchId = 0, Events = { new Protocol.Mvccpb.Event { Kv = new() { Key = B("/secret/x") } } } }, stop.Token);
        await judge.ForwardAsync(new WatchResponse { WatchId = 9, Events = { new Protocol.Mvccpb.Event { Kv = new() { Key = B("/open/x") } } } }, stop.Token);

        var told = _client.Written.Cast<WatchResponse>().ToList();
        Assert.Equal(4, told.Count);
        Assert.True(told[2] is { WatchId: 0, Canceled: true, Events.Count: 0 });
        Assert.StartsWith("rpc error: code = PermissionDenied desc = etcdshield: permission denied: identity \"watcher\" may not read prefix \"/secret/\"", told[2].CancelReason, StringComparison.Ordinal);
        Assert.Equal(B("/open/x"), told[3].Events.Single().Kv.Key);
        var cancel = Assert.IsType<WatchRequest>(Assert.Single(_etcd.Written));
        Assert.Equal(0, cancel.CancelRequest.WatchId);
    }

    [Fact]
    public async Task A_response_for_a_caller_no_longer_admitted_ends_the_stream_and_is_not_written()
    {
        using var stop = new CancellationTokenSource();
        using var client = new SerializedStreamWriter<IMessage>(_client, shared: true);
        using var etcd = new SerializedStreamWriter<IMessage>(_etcd, shared: true);
        using var judge = Judge(client, etcd);

        AdmitOnlySomeoneElse();
        var ended = await Assert.ThrowsAnyAsync<RpcException>(() => judge.ForwardAsync(new WatchResponse { WatchId = 9 }, stop.Token));

        Assert.Equal(StatusCode.PermissionDenied, ended.StatusCode);
        Assert.Same(ended, judge.Failure);
        Assert.Empty(_client.Written);
    }

    [Fact]
    public async Task A_stream_refused_once_stays_refused_until_it_has_ended()
    {
        // The judge that refuses the stream (on the reload signal, or before a client's message) and the end of the
        // call are two steps: etcd's next event can reach the judge between them, under a judgement already current.
        using var stop = new CancellationTokenSource();
        using var client = new SerializedStreamWriter<IMessage>(_client, shared: true);
        using var etcd = new SerializedStreamWriter<IMessage>(_etcd, shared: true);
        using var judge = Judge(client, etcd);
        Assert.Null(await judge.CreatingAsync(new WatchCreateRequest { Key = B("/secret/"), RangeEnd = B("/secret0"), WatchId = 3 }, stop.Token));
        await judge.ForwardAsync(new WatchResponse { WatchId = 3, Created = true }, stop.Token);

        AdmitOnlySomeoneElse();
        var refused = await Assert.ThrowsAnyAsync<RpcException>(() => judge.JudgeNowAsync(stop.Token));
        var again = await Assert.ThrowsAnyAsync<RpcException>(
            () => judge.ForwardAsync(new WatchResponse { WatchId = 3, Events = { new Protocol.Mvccpb.Event { Kv = new() { Key = B("/secret/x") } } } }, stop.Token));

        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Same(refused, again);
        Assert.Same(refused, judge.Failure);
        Assert.True(Assert.IsType<WatchResponse>(Assert.Single(_client.Written)).Created, "only the watch's creation was written");
    }

    private sealed class Recording : IAsyncStreamWriter<IMessage>
    {
        public List<IMessage> Written { get; } = [];

        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(IMessage message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(IMessage message, CancellationToken cancellationToken)
        {
            Written.Add(message);
            return Task.CompletedTask;
        }
    }

    private sealed class ConnectionItems(AdmittedClient client) : IConnectionItemsFeature
    {
        public IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?> { [AdmittedClient.ItemKey] = client };
    }

    private sealed class TestCallContext : ServerCallContext
    {
        protected override string MethodCore => "/etcdserverpb.Watch/Watch";

        protected override string HostCore => "localhost";

        protected override string PeerCore => "ipv4:127.0.0.1:1";

        protected override DateTime DeadlineCore => DateTime.MaxValue;

        protected override Metadata RequestHeadersCore { get; } = [];

        protected override CancellationToken CancellationTokenCore => CancellationToken.None;

        protected override Metadata ResponseTrailersCore { get; } = [];

        protected override Status StatusCore { get; set; }

        protected override WriteOptions? WriteOptionsCore { get; set; }

        protected override AuthContext AuthContextCore { get; } = new(null, []);

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
