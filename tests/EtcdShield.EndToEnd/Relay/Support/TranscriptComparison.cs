using System.Text;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>Compares two runs of one scenario step by step and line by line, and explains any difference.</summary>
internal static class TranscriptComparison
{
    /// <summary>Fails with every differing step shown side by side (normalised), with the raw output of both.</summary>
    public static void AssertSame(ScenarioRun expected, ScenarioRun actual)
    {
        var left = TranscriptNormalizer.Normalize(expected);
        var right = TranscriptNormalizer.Normalize(actual);
        var report = new StringBuilder();
        var differing = 0;
        for (var i = 0; i < Math.Max(left.Count, right.Count); i++)
        {
            var a = i < left.Count ? left[i] : null;
            var b = i < right.Count ? right[i] : null;
            if (a is not null && b is not null && a.Lines.SequenceEqual(b.Lines, StringComparer.Ordinal))
            {
                continue;
            }

            differing++;
            report.AppendLine().AppendLine($"===== step {i + 1} differs =====");
            Describe(report, expected.Name, a);
            Describe(report, actual.Name, b);
            if (a is not null && b is not null)
            {
                var first = Enumerable.Range(0, Math.Max(a.Lines.Count, b.Lines.Count))
                    .First(n => n >= a.Lines.Count || n >= b.Lines.Count || a.Lines[n] != b.Lines[n]);
                report.AppendLine($"first difference at line {first + 1}:")
                    .AppendLine($"  {expected.Name}: {(first < a.Lines.Count ? a.Lines[first] : "<no line>")}")
                    .AppendLine($"  {actual.Name}: {(first < b.Lines.Count ? b.Lines[first] : "<no line>")}");
            }
        }

        if (differing > 0)
        {
            Assert.Fail($"{differing} of {Math.Max(left.Count, right.Count)} steps differ between {expected.Name} and {actual.Name}:{report}");
        }
    }

    /// <summary>Every normalised line of a run, for a test's output when investigating.</summary>
    public static string Render(ScenarioRun run) =>
        string.Join(Environment.NewLine, TranscriptNormalizer.Normalize(run).SelectMany(s => s.Lines));

    /// <summary>The slowest steps of a run, to see where a scenario spends its time.</summary>
    public static string Slowest(ScenarioRun run, int count = 8) =>
        $"{run.Name}: {run.Steps.Sum(s => s.Elapsed.TotalSeconds):0.0} s in {run.Steps.Count} steps; slowest:{Environment.NewLine}" +
        string.Join(Environment.NewLine, run.Steps.OrderByDescending(s => s.Elapsed).Take(count).Select(s => $"  {s.Elapsed.TotalSeconds:0.00} s  {s.Command}"));

    private static void Describe(StringBuilder report, string name, NormalizedStep? step)
    {
        if (step is null)
        {
            report.AppendLine($"--- {name}: no such step (the run ended earlier)");
            return;
        }

        report.AppendLine($"--- {name}, normalised:");
        foreach (var line in step.Lines)
        {
            report.Append("    ").AppendLine(line);
        }

        report.AppendLine($"--- {name}, as printed: {step.Step.Result}");
    }
}
