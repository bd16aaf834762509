using System.Globalization;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// Reads counters from the proxy's Prometheus endpoint. The exporter caches its answer briefly, so a test
/// that expects a counter to move waits until it has (with a deadline) rather than reading once.
/// </summary>
/// <remarks>
/// Only meaningful for a proxy alone in the test process (see <see cref="ProxyMeters"/>); other tests count
/// with <see cref="ProxyMeters"/>.
/// </remarks>
internal static class ProxyMetrics
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    public const string DecryptFailures = "etcdshield_encryption_decrypt_failures_total";

    /// <summary>The sum of every series of <paramref name="name"/> whose labels include <paramref name="label"/> (e.g. <c>reason="unknown_key"</c>).</summary>
    public static async Task<double> ReadAsync(ShieldServer shield, string name, string? label = null)
    {
        var text = await ScrapeAsync(shield);
        double sum = 0;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || !(line.StartsWith(name + "{", StringComparison.Ordinal) || line.StartsWith(name + " ", StringComparison.Ordinal)))
            {
                continue;
            }

            var labelsEnd = line.IndexOf('}', StringComparison.Ordinal);
            var labels = labelsEnd < 0 ? "" : line[..labelsEnd];
            if (label is not null && !labels.Contains(label, StringComparison.Ordinal))
            {
                continue;
            }

            var value = line[(labelsEnd + 1)..].Trim().Split(' ')[0];
            sum += double.Parse(value, CultureInfo.InvariantCulture);
        }

        return sum;
    }

    /// <summary>The whole Prometheus text the proxy exports.</summary>
    public static Task<string> ScrapeAsync(ShieldServer shield) => Http.GetStringAsync(new Uri(shield.MetricsUrl + "/metrics"));

    /// <summary>Waits until the counter reaches <paramref name="atLeast"/>, and returns its value then.</summary>
    public static async Task<double> WaitForAsync(ShieldServer shield, string name, string? label, double atLeast)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var value = await ReadAsync(shield, name, label);
            if (value >= atLeast)
            {
                return value;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"{name}{{{label}}} stayed at {value}, expected at least {atLeast}.");
            }

            // The exporter refreshes its cached scrape every few hundred milliseconds.
            await Task.Delay(100);
        }
    }
}
