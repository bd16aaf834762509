using System.Text.Json;

namespace EtcdShield.LoadGen.Report;

/// <summary>
/// The micro-benchmark summary EtcdShield.Bench writes (microbench.json): mean time and allocation per case, so
/// the load report can show the envelope's cost next to raw AES-GCM and check it against its goal.
/// </summary>
internal sealed record MicrobenchCase(string Benchmark, string Method, int? Size, double MeanNs, double? ErrorNs, long? AllocatedBytes);

internal sealed class MicrobenchResults
{
    private MicrobenchResults(IReadOnlyList<MicrobenchCase> cases, string? job)
    {
        Cases = cases;
        Job = job;
    }

    public IReadOnlyList<MicrobenchCase> Cases { get; }

    public string? Job { get; }

    public static MicrobenchResults? Load(string? path)
    {
        if (path is null || !File.Exists(path))
        {
            return null;
        }

        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var cases = new List<MicrobenchCase>();
        foreach (var item in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            cases.Add(new MicrobenchCase(
                item.GetProperty("benchmark").GetString() ?? "",
                item.GetProperty("method").GetString() ?? "",
                item.TryGetProperty("size", out var size) && size.ValueKind == JsonValueKind.Number ? size.GetInt32() : null,
                item.GetProperty("meanNs").GetDouble(),
                item.TryGetProperty("errorNs", out var error) && error.ValueKind == JsonValueKind.Number ? error.GetDouble() : null,
                item.TryGetProperty("allocatedBytes", out var alloc) && alloc.ValueKind == JsonValueKind.Number ? alloc.GetInt64() : null));
        }

        var job = document.RootElement.TryGetProperty("job", out var j) ? j.GetString() : null;
        return new MicrobenchResults(cases, job);
    }

    public double? Mean(string method, int size) =>
        Cases.FirstOrDefault(c => c.Method == method && c.Size == size)?.MeanNs;

    /// <summary>Envelope time over raw AES-GCM time on the same plaintext, or null if either is missing.</summary>
    public double? Ratio(string envelopeMethod, string rawMethod, int size) =>
        Mean(envelopeMethod, size) is { } envelope && Mean(rawMethod, size) is { } raw && raw > 0 ? envelope / raw : null;
}
