using System.Globalization;
using System.Text.Json;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using EtcdShield.Microbench;
using Perfolizer.Horology;

// EtcdShield.Bench [--quick | --full] [--json FILE] [--artifacts DIR] [--filter PATTERN]
//   --quick: few short iterations (seconds per case, for the quick bench run); --full: enough for stable means.
//   --json:  also write a summary (mean and allocation per case) that bench/run.sh hands to the load report.
var quick = !args.Contains("--full");
MicrobenchMode.Quick = quick;
string? Value(string flag) => args.SkipWhile(a => a != flag).Skip(1).FirstOrDefault();
var json = Value("--json");
var artifacts = Value("--artifacts") ?? Path.Combine(Path.GetTempPath(), "etcdshield-microbench");
var filter = Value("--filter");

// In-process: BenchmarkDotNet's default toolchain generates and builds a project beside this one, which would inherit
// the repository's warnings-as-errors analyzers and take a minute per run; in-process measures the same code.
var job = (quick
        ? Job.Default.WithWarmupCount(1).WithIterationCount(3).WithIterationTime(TimeInterval.FromMilliseconds(100))
        : Job.Default.WithWarmupCount(4).WithIterationCount(15).WithIterationTime(TimeInterval.FromMilliseconds(250)))
    .WithLaunchCount(1)
    .WithToolchain(InProcessEmitToolchain.Instance)
    .WithId(quick ? "quick" : "full");
var config = ManualConfig.CreateEmpty()
    .AddJob(job)
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddColumnProvider(BenchmarkDotNet.Columns.DefaultColumnProviders.Instance)
    .AddLogger(ConsoleLogger.Default)
    .AddExporter(MarkdownExporter.GitHub)
    .WithArtifactsPath(artifacts)
    .WithOptions(ConfigOptions.DisableLogFile);

Type[] benchmarks = [typeof(EnvelopeBenchmarks), typeof(RangeRewriteBenchmarks), typeof(WatchBatchBenchmarks), typeof(AccessWalkBenchmarks)];
var summaries = benchmarks
    .Where(t => filter is null || t.Name.Contains(filter, StringComparison.OrdinalIgnoreCase))
    .Select(t => BenchmarkRunner.Run(t, config))
    .ToList();

if (json is not null)
{
    await File.WriteAllTextAsync(json, MicrobenchJson.Write(summaries, job.Id)).ConfigureAwait(false);
    Console.WriteLine("microbench: wrote " + json);
}

return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;

/// <summary>microbench.json: one entry per benchmark case, in the shape bench/EtcdShield.LoadGen reads.</summary>
internal static class MicrobenchJson
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static string Write(IEnumerable<Summary> summaries, string job)
    {
        var cases = new List<Dictionary<string, object?>>();
        foreach (var summary in summaries)
        {
            foreach (var report in summary.Reports.Where(r => r.ResultStatistics is not null))
            {
                var benchmark = report.BenchmarkCase;
                var parameters = benchmark.Parameters.Items.ToDictionary(p => p.Name, p => p.Value);
                var size = parameters.TryGetValue("Size", out var s) ? Convert.ToInt32(s, CultureInfo.InvariantCulture) : (int?)null;
                var others = string.Join(", ", parameters.Where(p => p.Key != "Size").Select(p => $"{p.Key}={p.Value}"));
                cases.Add(new Dictionary<string, object?>
                {
                    ["benchmark"] = benchmark.Descriptor.Type.Name.Replace("Benchmarks", "", StringComparison.Ordinal) + (others.Length > 0 ? $" ({others})" : ""),
                    ["method"] = benchmark.Descriptor.WorkloadMethod.Name,
                    ["size"] = size,
                    ["meanNs"] = report.ResultStatistics!.Mean,
                    ["errorNs"] = report.ResultStatistics.StandardError,
                    ["allocatedBytes"] = report.GcStats.GetBytesAllocatedPerOperation(benchmark),
                });
            }
        }

        return JsonSerializer.Serialize(new Dictionary<string, object?> { ["job"] = job, ["cases"] = cases }, Indented);
    }
}
