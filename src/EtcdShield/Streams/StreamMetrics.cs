using System.Diagnostics.Metrics;
using EtcdShield.Configuration;

namespace EtcdShield.Streams;

/// <summary>
/// How close identities and connections are to their stream limits, the "EtcdShield.Streams" meter: open streams per
/// identity and on the busiest connection, beside the limits themselves, so an alert can say "80 % of the limit"
/// before clients get RESOURCE_EXHAUSTED.
/// </summary>
internal sealed class StreamMetrics
{
    public const string MeterName = "EtcdShield.Streams";

    public StreamMetrics(OpenStreams streams, ShieldOptions options, IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(streams);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        meter.CreateObservableGauge(
            "etcdshield.streams.by_identity",
            () => streams.Usage().ByIdentity.Select(pair => new Measurement<int>(pair.Value, new KeyValuePair<string, object?>("identity", pair.Key))),
            unit: "{stream}",
            description: "Streams open now per policy identity (identities holding none are not listed); refused past --max-streams-per-identity.");
        meter.CreateObservableGauge(
            "etcdshield.streams.busiest_connection",
            () => streams.Usage().BusiestConnection,
            unit: "{stream}",
            description: "Streams open now on the client connection holding the most; refused past --max-streams-per-connection.");
        meter.CreateObservableGauge(
            "etcdshield.streams.limit",
            () => new[]
            {
                new Measurement<int>(options.MaxStreamsPerIdentity, new KeyValuePair<string, object?>("scope", "identity")),
                new Measurement<int>(options.MaxStreamsPerConnection, new KeyValuePair<string, object?>("scope", "connection")),
            },
            unit: "{stream}",
            description: "The stream limits in force: --max-streams-per-identity (scope identity) and --max-streams-per-connection (scope connection).");
    }
}
