using System.Diagnostics;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>
/// One pass of an etcdctl scenario against one endpoint: every command is run as given and its exit code and
/// output are recorded, so two passes (etcd directly, and etcd behind the proxy) can be compared step by step.
/// </summary>
internal sealed class ScenarioRun(string name, EtcdctlTarget target, string directory)
{
    private static readonly TimeSpan StreamDeadline = TimeSpan.FromSeconds(15);
    private readonly List<TranscriptStep> steps = [];

    public string Name { get; } = name;

    public EtcdctlTarget Target { get; } = target;

    /// <summary>A directory of this run's own, for files such as snapshots; normalised away in transcripts.</summary>
    public string Directory { get; } = directory;

    public IReadOnlyList<TranscriptStep> Steps => steps;

    public Task<CommandResult> RunAsync(params string[] arguments) => RunAsync(arguments, standardInput: null);

    public Task<CommandResult> RunSortedAsync(params string[] arguments) => RunAsync(arguments, standardInput: null, StepOptions.SortLines);

    public async Task<CommandResult> RunAsync(string[] arguments, string? standardInput, StepOptions options = StepOptions.None)
    {
        var started = Stopwatch.GetTimestamp();
        var result = await Target.Etcdctl().RunAsync(arguments, standardInput);
        Record(arguments, standardInput, result, options, Stopwatch.GetElapsedTime(started));
        return result;
    }

    /// <summary>
    /// Runs a command that never ends by itself (a watch, an election listener) until it has printed
    /// <paramref name="lastLine"/> on standard output, then kills it and records what it printed. The line is
    /// an event the scenario caused, so the output is complete and the same on every run.
    /// </summary>
    public Task<CommandResult> RunUntilAsync(string lastLine, params string[] arguments) =>
        RunUntilAsync(line => line == lastLine, arguments);

    /// <inheritdoc cref="RunUntilAsync(string, string[])"/>
    public async Task<CommandResult> RunUntilAsync(Func<string, bool> isLastLine, params string[] arguments)
    {
        var started = Stopwatch.GetTimestamp();
        await using var process = Target.Start(arguments);
        try
        {
            await process.WaitForStdOutAsync(isLastLine, StreamDeadline);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            // Recorded rather than thrown: the comparison then shows this step beside its counterpart.
        }

        var result = await process.KillAsync();
        Record(arguments, null, result, StepOptions.KilledByTest, Stopwatch.GetElapsedTime(started));
        return result;
    }

    /// <summary>Starts a long-running command; the caller stops it and hands the result to <see cref="Record"/>.</summary>
    public BackgroundProcess Start(params string[] arguments) => Target.Start(arguments);

    /// <param name="elapsed">How long the step took, shown when investigating a slow run; never compared.</param>
    public void Record(string[] arguments, string? standardInput, CommandResult result, StepOptions options = StepOptions.None, TimeSpan elapsed = default) =>
        steps.Add(new TranscriptStep(steps.Count + 1, arguments, standardInput, result, options, elapsed));
}

[Flags]
internal enum StepOptions
{
    None = 0,

    /// <summary>etcd lists these in an order that depends on random IDs (leases, members): compare them sorted.</summary>
    SortLines = 1,

    /// <summary>The command was stopped by the scenario; its exit code says only that.</summary>
    KilledByTest = 2,
}

internal sealed record TranscriptStep(int Number, IReadOnlyList<string> Arguments, string? StandardInput, CommandResult Result, StepOptions Options, TimeSpan Elapsed)
{
    public string Command => "etcdctl " + string.Join(' ', Arguments.Select(a => a.Length == 0 || a.Contains(' ', StringComparison.Ordinal) ? $"'{a}'" : a));
}
