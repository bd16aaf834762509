using System.Globalization;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// Reads counters from the proxy's Prometheus endpoint. The exporter caches its answer briefly, so a test
/// that expects a counter to move waits until it has (with a deadline) rather than reading once.
/// </summary>
/// <remarks>
/// Meters are matched by name, and every in-process proxy names its meter "EtcdShield", so a counter may
/// also count what proxies of other test classes did at the same time. Tests therefore assert that a
/// counter moved by at least what they caused, and pin the exact cause on the proxy's own log.
/// </remarks>
internal static class ProxyMetrics
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    public const string DecryptFailures = "etcdshield_encryption_decrypt_failures_total";

    public const string EncryptFailures = "etcdshield_encryption_encrypt_failures_total";

    public const string LegacyPlaintextReads = "etcdshield_encryption_legacy_plaintext_reads_total";

    /// <summary>The sum of every series of <paramref name="name"/> whose labels include <paramref name="label"/> (e.g. <c>reason="unknown_key"</c>).</summary>
    public static async Task<double> ReadAsync(ShieldServer shield, string name, string? label = null)
    {
        var text = await Http.GetStringAsync(new Uri(shield.MetricsUrl + "/metrics"));
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
