namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>What a finished (or killed) child process left behind.</summary>
/// <remarks>
/// A timeout is reported here rather than thrown so that a test can assert on a command that is
/// expected to hang (for example a refused handshake that a client keeps retrying).
/// </remarks>
internal sealed record CommandResult(int ExitCode, string StdOut, string StdErr)
{
    /// <summary>True when the deadline passed and the process tree was killed; <see cref="ExitCode"/> is then -1.</summary>
    public bool TimedOut { get; init; }

    /// <summary>The command as run, so failure messages say what was attempted.</summary>
    public string CommandLine { get; init; } = "";

    public bool Succeeded => ExitCode == 0 && !TimedOut;

    /// <summary>Standard output split into lines, without line terminators or the trailing empty line.</summary>
    public IReadOnlyList<string> StdOutLines => SplitLines(StdOut);

    public CommandResult EnsureSuccess() =>
        Succeeded ? this : throw new InvalidOperationException($"Command failed. {this}");

    public override string ToString()
    {
        var outcome = TimedOut ? "timed out and was killed" : $"exited with {ExitCode}";
        return $"`{CommandLine}` {outcome}{Environment.NewLine}stdout:{Environment.NewLine}{StdOut}{Environment.NewLine}stderr:{Environment.NewLine}{StdErr}";
    }

    private static string[] SplitLines(string text)
    {
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        return lines.Length > 0 && lines[^1].Length == 0 ? lines[..^1] : lines;
    }
}
