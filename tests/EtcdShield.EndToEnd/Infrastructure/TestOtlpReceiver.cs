using System.Collections.Concurrent;
using System.Net;
using EtcdShield.EndToEnd.Otlp;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// A real OTLP trace receiver, as an OpenTelemetry collector is one: OTLP/gRPC (TraceService/Export) on one
/// loopback port, OTLP/HTTP with protobuf bodies (POST /v1/traces) on another. It keeps every span it is sent.
/// </summary>
internal sealed class TestOtlpReceiver : TraceService.TraceServiceBase, IAsyncDisposable
{
    private readonly ConcurrentQueue<ReceivedSpan> _spans = new();
    private WebApplication? _app;

    private TestOtlpReceiver(int grpcPort, int httpPort)
    {
        GrpcEndpoint = $"http://127.0.0.1:{grpcPort}";
        HttpEndpoint = $"http://127.0.0.1:{httpPort}";
    }

    /// <summary>For <c>--otlp-protocol grpc</c> (HTTP/2 without TLS).</summary>
    public string GrpcEndpoint { get; }

    /// <summary>For <c>--otlp-protocol http/protobuf</c>: the proxy adds /v1/traces.</summary>
    public string HttpEndpoint { get; }

    /// <summary>Every span received so far, in the order received.</summary>
    public IReadOnlyList<ReceivedSpan> Spans => [.. _spans];

    public static async Task<TestOtlpReceiver> StartAsync()
    {
        var ports = FreePort.Allocate(2);
        var receiver = new TestOtlpReceiver(ports[0], ports[1]);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, ports[0], l => l.Protocols = HttpProtocols.Http2);
            kestrel.Listen(IPAddress.Loopback, ports[1], l => l.Protocols = HttpProtocols.Http1);
        });
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(receiver);
        receiver._app = builder.Build();
        receiver._app.MapGrpcService<TestOtlpReceiver>();
        receiver._app.MapPost("/v1/traces", receiver.ExportHttpAsync);
        await receiver._app.StartAsync();
        return receiver;
    }

    /// <summary>The spans of trace <paramref name="traceId"/> (lower-case hex) once <paramref name="complete"/> says they are all there.</summary>
    public Task<IReadOnlyList<ReceivedSpan>> TraceAsync(string traceId, Func<IReadOnlyList<ReceivedSpan>, bool> complete) =>
        Eventually.HoldsAsync(
            () => Task.FromResult<IReadOnlyList<ReceivedSpan>>([.. _spans.Where(s => s.TraceId == traceId)]),
            complete,
            TimeSpan.FromSeconds(30));

    public override Task<ExportTraceServiceResponse> Export(ExportTraceServiceRequest request, ServerCallContext context)
    {
        Keep(request);
        return Task.FromResult(new ExportTraceServiceResponse());
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private async Task ExportHttpAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        Keep(ExportTraceServiceRequest.Parser.ParseFrom(body.ToArray()));
        context.Response.ContentType = "application/x-protobuf";
        await context.Response.Body.WriteAsync(new ExportTraceServiceResponse().ToByteArray());
    }

    private void Keep(ExportTraceServiceRequest request)
    {
        foreach (var resource in request.ResourceSpans)
        {
            var service = resource.Resource?.Attributes.FirstOrDefault(a => a.Key == "service.name")?.Value.StringValue ?? "";
            foreach (var scope in resource.ScopeSpans)
            {
                foreach (var span in scope.Spans)
                {
                    _spans.Enqueue(new ReceivedSpan(service, scope.Scope?.Name ?? "", span));
                }
            }
        }
    }
}

/// <summary>One span as the receiver got it, with the service and instrumentation scope (ActivitySource) it came from.</summary>
internal sealed record ReceivedSpan(string Service, string Scope, Span Span)
{
    public string TraceId => Convert.ToHexStringLower(Span.TraceId.Span);

    public string SpanId => Convert.ToHexStringLower(Span.SpanId.Span);

    public string ParentSpanId => Convert.ToHexStringLower(Span.ParentSpanId.Span);

    public string Name => Span.Name;

    public AnyValue? Attribute(string key) => Span.Attributes.FirstOrDefault(a => a.Key == key)?.Value;

    /// <summary>Every attribute value as text, for checking that none carries what it must not.</summary>
    public IEnumerable<string> AttributeTexts() => Span.Attributes.Select(a => a.Value.ToString());

    public override string ToString() => $"{Scope} {Name} ({Span.Kind}) {SpanId} <- {ParentSpanId}";
}
