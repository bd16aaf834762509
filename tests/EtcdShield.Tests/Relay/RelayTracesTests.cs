using System.Diagnostics;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Tests.Relay;

/// <summary>
/// The relay's spans against the in-memory etcd: the request span joins the client's trace and says who asked
/// what and how it ended, never which key; the call to etcd is its child and replaces the client's traceparent;
/// a span the sampler drops gets no attributes and changes nothing etcd is sent; with nobody listening no span
/// exists at all. Every test listening to the relay's source is in this class: sources are matched by name.
/// </summary>
public sealed class RelayTracesTests : IDisposable
{
    private readonly RelayTraces _traces = new();
    private readonly RelayBed _bed;
    private readonly ActivityTraceId _trace = ActivityTraceId.CreateRandom();
    private readonly ActivitySpanId _clientSpan = ActivitySpanId.CreateRandom();

    public RelayTracesTests() => _bed = new RelayBed(traces: _traces);

    public void Dispose()
    {
        _bed.Dispose();
        _traces.Dispose();
    }

    [Fact]
    public async Task A_request_span_joins_the_clients_trace_with_method_identity_keys_and_code_and_etcds_call_is_its_child()
    {
        using var spans = new CollectedSpans(RelayTraces.SourceName);

        await PutAsync("/app/a", sampled: true);

        var request = Assert.Single(spans.OfTrace(_trace), s => s.Kind == ActivityKind.Server);
        var upstream = Assert.Single(spans.OfTrace(_trace), s => s.Kind == ActivityKind.Client);
        Assert.Equal((_clientSpan, "etcdserverpb.KV/Put"), (request.ParentSpanId, request.DisplayName));
        Assert.Equal("grpc", request.GetTagItem("rpc.system"));
        Assert.Equal("etcdserverpb.KV", request.GetTagItem("rpc.service"));
        Assert.Equal("Put", request.GetTagItem("rpc.method"));
        Assert.Equal("app", request.GetTagItem("etcdshield.identity"));
        Assert.Equal(1, request.GetTagItem("etcdshield.keys"));
        Assert.Equal(0, request.GetTagItem("rpc.grpc.status_code"));
        Assert.Equal(ActivityStatusCode.Unset, request.Status);
        Assert.Equal((request.SpanId, "etcdserverpb.KV/Put"), (upstream.ParentSpanId, upstream.DisplayName));
        Assert.Equal(upstream.Id, Assert.Single(_bed.Etcd.Requests).Headers?.GetValue("traceparent"));
        Assert.Equal("vendor=1", _bed.Etcd.Requests[0].Headers?.GetValue("tracestate"));
    }

    [Fact]
    public async Task A_refused_request_has_its_code_on_the_span_and_no_key_in_any_attribute_and_no_etcd_call()
    {
        using var spans = new CollectedSpans(RelayTraces.SourceName);

        await Assert.ThrowsAsync<EtcdShield.Authorization.AccessDenial>(() => PutAsync("/other/secret-key", sampled: true));

        var request = Assert.Single(spans.OfTrace(_trace));
        Assert.Equal((int)StatusCode.PermissionDenied, request.GetTagItem("rpc.grpc.status_code"));
        // The client's mistake, not the proxy's failure.
        Assert.Equal(ActivityStatusCode.Unset, request.Status);
        Assert.DoesNotContain(request.TagObjects, t => t.Value?.ToString()?.Contains("secret-key", StringComparison.Ordinal) == true);
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task An_unreachable_etcd_fails_both_spans_with_the_codes_name_not_its_message()
    {
        using var spans = new CollectedSpans(RelayTraces.SourceName);
        _bed.Etcd.FailNext("KV/Put", StatusCode.Unavailable, "connection to /app/a refused");

        await Assert.ThrowsAsync<RpcException>(() => PutAsync("/app/a", sampled: true));

        var traced = spans.OfTrace(_trace);
        Assert.Equal(2, traced.Count);
        Assert.All(traced, s => Assert.Equal((ActivityStatusCode.Error, "UNAVAILABLE"), (s.Status, s.StatusDescription)));
        Assert.All(traced, s => Assert.Equal((int)StatusCode.Unavailable, s.GetTagItem("rpc.grpc.status_code")));
    }

    [Fact]
    public async Task A_span_the_sampler_drops_carries_nothing_and_etcd_gets_the_clients_traceparent_as_sent()
    {
        using var spans = new CollectedSpans(RelayTraces.SourceName) { Sampling = ActivitySamplingResult.PropagationData };

        await PutAsync("/app/a", sampled: true);

        var request = Assert.Single(spans.OfTrace(_trace));
        Assert.False(request.IsAllDataRequested);
        Assert.Empty(request.TagObjects);
        Assert.Equal(ClientParent(sampled: true), Assert.Single(_bed.Etcd.Requests).Headers?.GetValue("traceparent"));
    }

    [Fact]
    public async Task A_client_trace_that_says_not_sampled_creates_no_span_at_all_and_etcd_gets_its_traceparent_as_sent()
    {
        using var spans = new CollectedSpans(RelayTraces.SourceName);

        await PutAsync("/app/a", sampled: false);

        Assert.Empty(spans.OfTrace(_trace));
        Assert.Equal(ClientParent(sampled: false), Assert.Single(_bed.Etcd.Requests).Headers?.GetValue("traceparent"));
    }

    [Fact]
    public async Task At_ratio_0_a_request_without_a_traceparent_creates_no_span_but_a_clients_sampled_trace_is_still_joined()
    {
        using var traces = new RelayTraces(rootSamplingRatio: 0);
        using var bed = new RelayBed(traces: traces);
        using var spans = new CollectedSpans(RelayTraces.SourceName);

        await bed.Relay.UnaryAsync(RelayBed.Method("KV/Put"), new PutRequest { Key = ByteString.CopyFromUtf8("/app/a"), Value = ByteString.CopyFromUtf8("v") }, bed.Context());
        Assert.Empty(spans.Ended);

        var context = bed.Context();
        context.RequestHeaders.Add("traceparent", ClientParent(sampled: true));
        await bed.Relay.UnaryAsync(RelayBed.Method("KV/Put"), new PutRequest { Key = ByteString.CopyFromUtf8("/app/a"), Value = ByteString.CopyFromUtf8("v") }, context);
        Assert.Equal(2, spans.OfTrace(_trace).Count);
    }

    [Fact]
    public async Task With_nobody_listening_no_span_exists_during_the_call_and_etcd_gets_the_clients_traceparent_as_sent()
    {
        Activity? during = null;
        _bed.Etcd.OnNext("KV/Put", (request, next, _) =>
        {
            during = Activity.Current;
            return next(request);
        });

        await PutAsync("/app/a", sampled: true);

        Assert.Null(during);
        Assert.Equal(ClientParent(sampled: true), Assert.Single(_bed.Etcd.Requests).Headers?.GetValue("traceparent"));
    }

    [Fact]
    public async Task Without_a_traceparent_the_request_span_is_a_root_not_a_child_of_the_hosts_activity_which_is_current_again_after()
    {
        using var spans = new CollectedSpans(RelayTraces.SourceName);
        using var host = new Activity("Microsoft.AspNetCore.Hosting.HttpRequestIn").Start();

        await _bed.Relay.UnaryAsync(RelayBed.Method("KV/Put"), new PutRequest { Key = ByteString.CopyFromUtf8("/app/a"), Value = ByteString.CopyFromUtf8("v") }, _bed.Context());

        var request = Assert.Single(spans.Ended, s => s.Kind == ActivityKind.Server && s.GetTagItem("rpc.method") as string == "Put" && s.TraceId != host.TraceId);
        Assert.Equal(default, request.ParentSpanId);
        Assert.Same(host, Activity.Current);
    }

    [Theory]
    [InlineData(true, ActivityStatusCode.Unset, 0)]
    [InlineData(false, ActivityStatusCode.Error, 1)]
    public void A_stream_to_etcd_is_a_span_until_the_relay_lets_go_of_it_ended_with_etcds_status_or_as_cancelled(bool etcdEnded, ActivityStatusCode expected, int code)
    {
        using var spans = new CollectedSpans(RelayTraces.SourceName);
        using var request = new Activity("request").Start();
        var etcd = new StreamInvoker(etcdEnded ? new Status(StatusCode.OK, "") : null);

        var call = new TracedUpstream(etcd, _traces).AsyncDuplexStreamingCall(RelayBed.Method("Watch/Watch").Method, null, new CallOptions(new Metadata { { "traceparent", ClientParent(sampled: true) } }));
        Assert.Empty(spans.OfTrace(request.TraceId));
        call.Dispose();

        var stream = Assert.Single(spans.OfTrace(request.TraceId));
        Assert.Equal((request.SpanId, "etcdserverpb.Watch/Watch", expected, code), (stream.ParentSpanId, stream.DisplayName, stream.Status, stream.GetTagItem("rpc.grpc.status_code")));
        Assert.Equal(stream.Id, etcd.Sent?.GetValue("traceparent"));
        Assert.True(etcd.Disposed);
    }

    private string ClientParent(bool sampled) => $"00-{_trace}-{_clientSpan}-{(sampled ? "01" : "00")}";

    private Task<IMessage> PutAsync(string key, bool sampled)
    {
        var context = _bed.Context();
        context.RequestHeaders.Add("traceparent", ClientParent(sampled));
        context.RequestHeaders.Add("tracestate", "vendor=1");
        return _bed.Relay.UnaryAsync(RelayBed.Method("KV/Put"), new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8("v") }, context);
    }

    /// <summary>An etcd whose one stream has ended with <c>status</c>, or is still open (null) when the relay lets go of it.</summary>
    private sealed class StreamInvoker(Status? status) : CallInvoker
    {
        public Metadata? Sent { get; private set; }

        public bool Disposed { get; private set; }

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options)
        {
            Sent = options.Headers;
            return new AsyncDuplexStreamingCall<TRequest, TResponse>(
                null!, null!, Task.FromResult(new Metadata()), () => status ?? throw new InvalidOperationException("still open"), () => [], () => Disposed = true);
        }

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw new NotSupportedException();

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw new NotSupportedException();

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw new NotSupportedException();

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) => throw new NotSupportedException();
    }
}
