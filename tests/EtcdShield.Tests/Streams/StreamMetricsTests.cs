using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Reload;
using EtcdShield.Streams;
using EtcdShield.Tls;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Streams;

public sealed class StreamMetricsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-stream-metrics").FullName;
    private readonly ReloadableFiles<AccessPolicy> _policy;
    private readonly ReloadableFiles<ClientTrust> _trust = new("client trust", [], () => new ClientTrust([], []));

    public StreamMetricsTests()
    {
        var file = Path.Combine(_dir, "policy.yaml");
        File.WriteAllText(file, """
            identities:
              - name: alice
                match: { cn: alice }
                keys: [{ prefix: /a/, permission: read }]
              - name: bob
                match: { cn: bob }
                keys: [{ prefix: /b/, permission: read }]
            """);
        _policy = new ReloadableFiles<AccessPolicy>("policy", [file], () => new AccessPolicy(PolicyFile.Load(file), file));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Streams_per_identity_the_busiest_connection_and_the_limits_are_observed_as_they_are_now()
    {
        var options = new ShieldOptions { MaxStreamsPerIdentity = 50, MaxStreamsPerConnection = 20 };
        var streams = new OpenStreams(options, _policy, _trust, NullLogger<OpenStreams>.Instance);
        var meters = TestMeterFactory.Create();
        _ = new StreamMetrics(streams, options, meters);
        using var byIdentity = new MetricCollector<int>(meters, StreamMetrics.MeterName, "etcdshield.streams.by_identity");
        using var busiest = new MetricCollector<int>(meters, StreamMetrics.MeterName, "etcdshield.streams.busiest_connection");
        using var limits = new MetricCollector<int>(meters, StreamMetrics.MeterName, "etcdshield.streams.limit");

        var held = new[] { streams.Open(As("alice"), "c1"), streams.Open(As("alice"), "c1"), streams.Open(As("alice"), "c2"), streams.Open(As("bob"), "c3") };
        held[0].Dispose();
        byIdentity.RecordObservableInstruments();
        busiest.RecordObservableInstruments();
        limits.RecordObservableInstruments();

        Assert.Equal(
            ["alice=2", "bob=1"],
            byIdentity.GetMeasurementSnapshot().Select(m => $"{m.Tags["identity"]}={m.Value}").Order(StringComparer.Ordinal));
        Assert.Equal(1, busiest.LastMeasurement?.Value);
        Assert.Equal(
            ["connection=20", "identity=50"],
            limits.GetMeasurementSnapshot().Select(m => $"{m.Tags["scope"]}={m.Value}").Order(StringComparer.Ordinal));

        foreach (var stream in held)
        {
            stream.Dispose();
        }

        byIdentity.Clear();
        byIdentity.RecordObservableInstruments();
        busiest.RecordObservableInstruments();
        Assert.Empty(byIdentity.GetMeasurementSnapshot());
        Assert.Equal(0, busiest.LastMeasurement?.Value);
    }

    private Caller As(string name) =>
        new(ClientIdentity.Unknown, _policy.Current.Identities.Single(i => i.Name == name), _policy.Current, "127.0.0.1:1");
}
