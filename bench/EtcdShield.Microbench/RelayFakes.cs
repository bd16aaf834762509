using EtcdShield.Relay;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Microbench;

/// <summary>
/// Stands in for the upstream channel: answers every unary call at once with a prepared response, after letting the
/// benchmark restore its values (handlers decrypt in place), so a handler's whole path runs with no network.
/// </summary>
internal sealed class ReplayInvoker(IMessage response, Action reset) : CallInvoker
{
    private static readonly Task<Metadata> NoHeaders = Task.FromResult(new Metadata());

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        reset();
        return new AsyncUnaryCall<TResponse>(
            Task.FromResult((TResponse)response),
            NoHeaders,
            static () => Status.DefaultSuccess,
            static () => [],
            static () => { });
    }

    public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
        throw new NotSupportedException();

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
        throw new NotSupportedException();

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
        throw new NotSupportedException();

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
        throw new NotSupportedException();
}

/// <summary>The least a server call context needs to be for <see cref="RelayCall"/>: no deadline, no headers.</summary>
internal sealed class BenchServerCallContext : ServerCallContext
{
    private readonly Metadata _headers = [];
    private readonly Metadata _trailers = [];

    protected override string MethodCore => "/etcdserverpb.KV/Range";

    protected override string HostCore => "127.0.0.1";

    protected override string PeerCore => "ipv4:127.0.0.1:1";

    protected override DateTime DeadlineCore => DateTime.MaxValue;

    protected override Metadata RequestHeadersCore => _headers;

    protected override CancellationToken CancellationTokenCore => CancellationToken.None;

    protected override Metadata ResponseTrailersCore => _trailers;

    protected override Status StatusCore { get; set; }

    protected override WriteOptions? WriteOptionsCore { get; set; }

    protected override AuthContext AuthContextCore => new(null, []);

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
}

internal static class Relayed
{
    public static RelayedMethod Method(string service, string name) =>
        RelayedMethod.All().Single(m => m.Name == service + "/" + name);
}
