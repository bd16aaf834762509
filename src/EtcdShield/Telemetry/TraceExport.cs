using System.Reflection;
using EtcdShield.Configuration;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace EtcdShield.Telemetry;

/// <summary>
/// Tracing, when <c>--otlp-endpoint</c> is given, and nothing at all otherwise: without a tracer provider no
/// listener exists, so no span is created on the request path. Spans are queued in memory (<see cref="SpanQueue"/>) and exported
/// in the background; a full queue drops new spans and a slow or dead collector only delays the export thread, never
/// a request.
/// </summary>
internal static class TraceExport
{
    /// <summary>Every feature's spans come from an ActivitySource named like its meter, "EtcdShield.&lt;Folder&gt;".</summary>
    public const string Sources = "EtcdShield.*";

    /// <summary>The bound on spans ended but not yet exported; past it new spans are dropped.</summary>
    public const int MaxQueuedSpans = 2048;

    public const int MaxSpansPerExport = 512;

    public static readonly TimeSpan ExportInterval = TimeSpan.FromSeconds(5);

    /// <summary>How long one export may take, retries included, before its spans are given up.</summary>
    public static readonly TimeSpan ExportTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Names the proxy in every signal, spans and Prometheus' <c>target_info</c> alike: <c>service.name</c>
    /// "etcdshield" and the build's version, rather than the SDK's <c>unknown_service:</c> and the process name.
    /// </summary>
    public static void DescribeService(ResourceBuilder resource)
    {
        var version = typeof(TraceExport).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        resource.AddService("etcdshield", serviceVersion: version);
    }

    public static void AddTo(IServiceCollection services, ShieldOptions options)
    {
        if (options.OtlpEndpoint is not { } endpoint)
        {
            return;
        }

        services.AddOpenTelemetry().WithTracing(tracing => tracing
            .SetSampler(Sampler(options.TraceSamplingRatio))
            .AddSource(Sources)
            .AddProcessor(_ => new SpanQueue(new OtlpTraceExporter(ExporterOptions(endpoint, options.OtlpProtocol)), MaxQueuedSpans, MaxSpansPerExport, ExportInterval)));
    }

    /// <summary>The OTLP exporter's settings; the rest (headers, for one) it reads from OTEL_EXPORTER_OTLP_* as usual.</summary>
    private static OtlpExporterOptions ExporterOptions(Uri endpoint, string protocol)
    {
        var otlp = new OtlpExporterOptions
        {
            Protocol = protocol == "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc,
            TimeoutMilliseconds = (int)ExportTimeout.TotalMilliseconds,
        };
        otlp.Endpoint = ExportUrl(endpoint, otlp.Protocol);
        return otlp;
    }

    /// <summary>
    /// A client's sampling decision (the flag of its traceparent) is followed, as etcd follows it; a request without
    /// one starts a trace with probability <paramref name="ratio"/>.
    /// </summary>
    public static Sampler Sampler(double ratio) => new ParentBasedSampler(new TraceIdRatioBasedSampler(ratio));

    /// <summary>
    /// The URL spans are posted to: a gRPC endpoint as given; an HTTP one without a path gets OTLP's /v1/traces, as
    /// OTEL_EXPORTER_OTLP_ENDPOINT does, so the same collector address works for both protocols.
    /// </summary>
    public static Uri ExportUrl(Uri endpoint, OtlpExportProtocol protocol) =>
        protocol == OtlpExportProtocol.HttpProtobuf && endpoint.AbsolutePath == "/" ? new Uri(endpoint, "v1/traces") : endpoint;
}
