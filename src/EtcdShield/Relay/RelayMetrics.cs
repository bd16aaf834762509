using System.Diagnostics.Metrics;
using EtcdShield.Telemetry;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>Requests by method and status code, their latency, and the streams open right now: the relay's meter.</summary>
internal sealed class RelayMetrics
{
    public const string MeterName = "EtcdShield.Relay";

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly UpDownCounter<long> _activeStreams;

    public RelayMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _requests = meter.CreateCounter<long>("etcdshield.requests", unit: "{request}", description: "Requests relayed, by method and gRPC status code.");
        _duration = meter.CreateHistogram<double>(
            "etcdshield.request.duration",
            unit: "s",
            description: "Time from receiving a request to answering it (for streams: the stream's lifetime).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _activeStreams = meter.CreateUpDownCounter<long>("etcdshield.streams.active", unit: "{stream}", description: "Streams open now, by method.");
    }

    public void RequestCompleted(string method, StatusCode status, TimeSpan elapsed)
    {
        var methodTag = new KeyValuePair<string, object?>("method", method);
        _requests.Add(1, methodTag, new KeyValuePair<string, object?>("code", StatusCodeNames.Of(status)));
        _duration.Record(elapsed.TotalSeconds, methodTag);
    }

    public void StreamOpened(string method) => _activeStreams.Add(1, new KeyValuePair<string, object?>("method", method));

    public void StreamClosed(string method) => _activeStreams.Add(-1, new KeyValuePair<string, object?>("method", method));
}
