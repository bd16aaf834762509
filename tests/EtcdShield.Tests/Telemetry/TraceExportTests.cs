using System.Diagnostics;
using EtcdShield.Telemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Trace;

namespace EtcdShield.Tests.Telemetry;

/// <summary>Whom the proxy traces (a client's decision first, then the ratio) and where spans are posted.</summary>
public sealed class TraceExportTests
{
    [Fact]
    public void At_ratio_0_only_requests_a_client_sampled_are_traced()
    {
        var sampler = TraceExport.Sampler(0);

        Assert.Equal(SamplingDecision.Drop, Decide(sampler, parent: null));
        Assert.Equal(SamplingDecision.RecordAndSample, Decide(sampler, parent: ActivityTraceFlags.Recorded));
        Assert.Equal(SamplingDecision.Drop, Decide(sampler, parent: ActivityTraceFlags.None));
    }

    [Fact]
    public void At_ratio_1_every_request_is_traced_unless_its_client_decided_not_to()
    {
        var sampler = TraceExport.Sampler(1);

        Assert.Equal(SamplingDecision.RecordAndSample, Decide(sampler, parent: null));
        Assert.Equal(SamplingDecision.Drop, Decide(sampler, parent: ActivityTraceFlags.None));
    }

    [Fact]
    public void A_ratio_between_traces_about_that_share_of_requests_without_a_parent()
    {
        var sampler = TraceExport.Sampler(0.25);

        var traced = Enumerable.Range(0, 4000).Count(_ => Decide(sampler, parent: null) == SamplingDecision.RecordAndSample);

        // Decided by the trace id, uniformly random here: 1000 expected, this band is over 10 standard deviations wide.
        Assert.InRange(traced, 700, 1300);
    }

    [Theory]
    [InlineData("http://collector:4318", OtlpExportProtocol.HttpProtobuf, "http://collector:4318/v1/traces")]
    [InlineData("http://collector:4318/", OtlpExportProtocol.HttpProtobuf, "http://collector:4318/v1/traces")]
    [InlineData("https://collector/otlp/v1/traces", OtlpExportProtocol.HttpProtobuf, "https://collector/otlp/v1/traces")]
    [InlineData("http://collector:4317", OtlpExportProtocol.Grpc, "http://collector:4317/")]
    public void An_http_endpoint_without_a_path_gets_otlps_traces_path(string endpoint, OtlpExportProtocol protocol, string posted)
    {
        Assert.Equal(new Uri(posted), TraceExport.ExportUrl(new Uri(endpoint), protocol));
    }

    private static SamplingDecision Decide(Sampler sampler, ActivityTraceFlags? parent)
    {
        var trace = ActivityTraceId.CreateRandom();
        var context = parent is { } flags ? new ActivityContext(trace, ActivitySpanId.CreateRandom(), flags, isRemote: true) : default;
        return sampler.ShouldSample(new SamplingParameters(context, trace, "etcdserverpb.KV/Put", ActivityKind.Server)).Decision;
    }
}
