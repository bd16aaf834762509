using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;

namespace EtcdShield.Tests;

/// <summary>Questions tests ask of what a <see cref="MetricCollector{T}"/> or a <see cref="FakeLogCollector"/> collected.</summary>
internal static class CollectedTelemetry
{
    /// <summary>What a counter added up to in measurements tagged <paramref name="tag"/> = <paramref name="value"/>.</summary>
    public static long Counted(this MetricCollector<long> collector, string tag, string value) =>
        collector.GetMeasurementSnapshot().ContainsTags(new KeyValuePair<string, object?>(tag, value)).EvaluateAsCounter();

    /// <summary>What a counter added up to.</summary>
    public static long Counted(this MetricCollector<long> collector) => collector.GetMeasurementSnapshot().EvaluateAsCounter();

    /// <summary>Every message logged, with its exception, for asserting what never appears in a log.</summary>
    public static string AllText(this FakeLogCollector logs) =>
        string.Join('\n', logs.GetSnapshot().Select(r => r.Exception is null ? r.Message : r.Message + " | " + r.Exception));

    /// <summary>Whether <paramref name="record"/> is the event named <paramref name="name"/> of the logger for <typeparamref name="TCategory"/>.</summary>
    public static bool Is<TCategory>(this FakeLogRecord record, string name) =>
        record.Category == typeof(TCategory).FullName && record.Id.Name == name;
}
