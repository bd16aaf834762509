using System.Diagnostics.Metrics;

namespace EtcdShield.Hosting;

/// <summary>
/// The readiness checks as a gauge, the "EtcdShield.Hosting" meter: 1 when etcd (or the key provider) answered the
/// last round, 0 when not. Each scrape also asks for a round, which <see cref="Readiness"/> serves from its 2 s cache,
/// so scrapes cost etcd and the HSM at most one call each per 2 s and the gauge is at most one scrape old.
/// </summary>
internal sealed class ReadinessMetrics
{
    public const string MeterName = "EtcdShield.Hosting";

    public ReadinessMetrics(Readiness readiness, IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(readiness);
        ArgumentNullException.ThrowIfNull(meterFactory);
        meterFactory.Create(MeterName).CreateObservableGauge(
            "etcdshield.ready",
            () => Observe(readiness),
            description: "1 when the check (etcd: a Status call; key_provider: the HSM or KMS plugin) passed in the last readiness round, else 0.");
    }

    private static IEnumerable<Measurement<int>> Observe(Readiness readiness)
    {
        // Never waits in the scrape: the round this starts (if the cached one is stale) is what the next scrape shows.
        _ = readiness.CheckAsync();
        return readiness.Latest is { } report
            ? report.Results.Select(r => new Measurement<int>(r.Reason is null ? 1 : 0, new KeyValuePair<string, object?>("check", r.Name)))
            : [];
    }
}
