namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>
/// Test classes that read an in-process proxy's /metrics run alone, after every parallel class: OpenTelemetry's
/// Prometheus exporter merges the instruments of every proxy in the process under one name, and a proxy of
/// another test being disposed retires the shared instruments, so the scrape could miss this proxy's counters.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RunsAlone
{
    public const string Name = "Runs alone: reads an in-process proxy's metrics";
}
