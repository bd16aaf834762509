using System.Collections.Concurrent;
using System.Diagnostics;
using EtcdShield.Authorization;
using EtcdShield.Telemetry;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// The relay's spans: one per request (from <see cref="CallScope"/>'s beginning to its end) and one per call to
/// etcd beneath it (<see cref="TracedUpstream"/>). With tracing off nobody listens to the source and nothing is
/// created; attributes are set only on spans that are recorded. A span names the method, the identity, how many
/// key ranges the request touched and its status code, never a key or a value: trace backends are not kept as
/// the audit log is, and the audit log is where keys are named (hashed under <c>--audit-hash-keys</c>).
/// </summary>
internal sealed class RelayTraces : IDisposable
{
    public const string SourceName = "EtcdShield.Relay";

    private readonly ActivitySource _source = new(SourceName);

    // Whether a request without a client's trace context may be sampled: false at --trace-sampling-ratio 0, where the
    // sampler would drop every such request but OpenTelemetry still creates a span object for its trace context.
    private readonly bool _rootsSampled;

    // "/etcdserverpb.KV/Put" as the span name "etcdserverpb.KV/Put", made once per method of etcd's fixed API.
    private readonly ConcurrentDictionary<string, string> _spanNames = new(StringComparer.Ordinal);

    /// <param name="rootSamplingRatio">--trace-sampling-ratio: the share of requests without a client's trace context that are traced.</param>
    public RelayTraces(double rootSamplingRatio = 1) => _rootsSampled = rootSamplingRatio > 0;

    /// <summary>
    /// The request's span, as a child of the client's span when its metadata carries a W3C traceparent, or null
    /// when tracing is off (then not even the metadata is read).
    /// </summary>
    public Activity? StartRequest(IMethod method, Metadata requestHeaders)
    {
        if (!_source.HasListeners())
        {
            return null;
        }

        var parent = TraceContext.ParentOf(requestHeaders);
        // The sampler's decision where it is known to be a drop (it follows the client's flag; a request without one
        // is dropped at ratio 0), taken here so that such a request creates nothing: OpenTelemetry would make an
        // unrecorded span object for it, 416 bytes and two trace-context switches per request for no trace.
        if (parent == default ? !_rootsSampled : (parent.TraceFlags & ActivityTraceFlags.Recorded) == 0)
        {
            return null;
        }

        // The host's own activity for the HTTP request is never exported: a request span under it would hang from a
        // span no backend has, so the request span is the client's child or a root.
        var outer = Activity.Current;
        Activity.Current = null;
        var span = _source.StartActivity(SpanName(method), ActivityKind.Server, parent);
        if (span is null)
        {
            Activity.Current = outer;
            return null;
        }

        if (span.IsAllDataRequested)
        {
            Describe(span, method);
        }

        return span;
    }

    /// <summary>Ends a request's span with who made it, how many key ranges it touched, and how it ended.</summary>
    public static void EndRequest(Activity span, Caller caller, int keys, StatusCode status)
    {
        if (span.IsAllDataRequested)
        {
            span.AddTag("etcdshield.identity", caller.Name);
            span.AddTag("etcdshield.keys", keys);
            SetOutcome(span, status, server: true);
        }

        span.Dispose();
    }

    /// <summary>A call to etcd's span, beneath the current one; it is not made current, so later work of the request is not mistaken for part of the call.</summary>
    public Activity? StartUpstream(IMethod method)
    {
        var outer = Activity.Current;
        var span = _source.StartActivity(SpanName(method), ActivityKind.Client);
        Activity.Current = outer;
        if (span is { IsAllDataRequested: true })
        {
            Describe(span, method);
        }

        return span;
    }

    public static void EndUpstream(Activity span, StatusCode status)
    {
        if (span.IsAllDataRequested)
        {
            SetOutcome(span, status, server: false);
        }

        span.Dispose();
    }

    public void Dispose() => _source.Dispose();

    private string SpanName(IMethod method) =>
        _spanNames.TryGetValue(method.FullName, out var name) ? name : _spanNames.GetOrAdd(method.FullName, full => full.TrimStart('/'));

    // Tags are added, not set: each is written once per span, and setting searches the span's tags first (1 % of
    // the proxy's CPU at ratio 1 in a profile of 1 KiB puts).
    private static void Describe(Activity span, IMethod method)
    {
        span.AddTag("rpc.system", "grpc");
        span.AddTag("rpc.service", method.ServiceName);
        span.AddTag("rpc.method", method.Name);
    }

    /// <summary>
    /// The status code, and an error status as OpenTelemetry's gRPC conventions have it: on the server side only for
    /// codes that mean the proxy or etcd failed (a refused or invalid request is the client's error, not ours).
    /// The description is the code's name, never the message, which may name a key.
    /// </summary>
    private static void SetOutcome(Activity span, StatusCode status, bool server)
    {
        span.AddTag("rpc.grpc.status_code", (int)status);
        var failed = server
            ? status is StatusCode.Unknown or StatusCode.DeadlineExceeded or StatusCode.Unimplemented or StatusCode.Internal or StatusCode.Unavailable or StatusCode.DataLoss
            : status != StatusCode.OK;
        if (failed)
        {
            span.SetStatus(ActivityStatusCode.Error, StatusCodeNames.Of(status));
        }
    }
}
