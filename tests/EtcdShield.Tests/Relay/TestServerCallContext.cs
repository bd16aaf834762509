using Grpc.Core;

namespace EtcdShield.Tests.Relay;

/// <summary>A client's side of one call as the server sees it, without a server: headers, deadline, cancellation, peer.</summary>
internal sealed class TestServerCallContext : ServerCallContext
{
    private readonly Metadata _requestHeaders;
    private readonly DateTime _deadline;
    private readonly CancellationToken _cancellationToken;

    public TestServerCallContext(Metadata? requestHeaders = null, DateTime? deadline = null, CancellationToken cancellationToken = default)
    {
        _requestHeaders = requestHeaders ?? [];
        _deadline = deadline ?? DateTime.MaxValue;
        _cancellationToken = cancellationToken;
    }

    protected override string MethodCore => "";

    protected override string HostCore => "localhost";

    protected override string PeerCore => "ipv4:127.0.0.1:50000";

    protected override DateTime DeadlineCore => _deadline;

    protected override Metadata RequestHeadersCore => _requestHeaders;

    protected override CancellationToken CancellationTokenCore => _cancellationToken;

    protected override Metadata ResponseTrailersCore { get; } = [];

    protected override Status StatusCore { get; set; }

    protected override WriteOptions? WriteOptionsCore { get; set; }

    protected override AuthContext AuthContextCore { get; } = new(null, []);

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
        throw new NotSupportedException("the proxy does not propagate calls");

    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
}
