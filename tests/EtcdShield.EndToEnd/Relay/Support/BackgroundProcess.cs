using System.Diagnostics;
using System.Globalization;
using System.Text;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>
/// A child process that runs until the test stops it (etcdctl watch, elect, the EtcdShield executable),
/// with its output captured line by line so the test can wait for a line that proves progress instead of
/// sleeping. Disposing kills the whole process tree.
/// </summary>
internal sealed class BackgroundProcess : IAsyncDisposable
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    private readonly Process process;
    private readonly CapturedOutput stdout = new();
    private readonly CapturedOutput stderr = new();

    private BackgroundProcess(Process process, string commandLine)
    {
        this.process = process;
        CommandLine = commandLine;
    }

    public string CommandLine { get; }

    public int ProcessId => process.Id;

    public bool HasExited => process.HasExited;

    /// <summary>Standard output so far.</summary>
    public string StdOut => stdout.Text;

    public string StdErr => stderr.Text;

    public static BackgroundProcess Start(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Utf8,
            StandardErrorEncoding = Utf8,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        ExternalCommand.ApplyEnvironment(startInfo, environment);
        var process = new Process { StartInfo = startInfo };
        var started = new BackgroundProcess(process, string.Join(' ', startInfo.ArgumentList.Prepend(fileName)));
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                started.stdout.Append(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                started.stderr.Append(e.Data);
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        // Nothing is ever typed into these tools: end-of-file at once, as ExternalCommand does.
        process.StandardInput.Close();
        return started;
    }

    /// <summary>Waits for a standard output line that matches; fails at once if the process exits first.</summary>
    public Task<string> WaitForStdOutAsync(Func<string, bool> predicate, TimeSpan timeout) => WaitForAsync(stdout, "stdout", predicate, timeout);

    /// <summary>Waits for a standard error line that matches (where .NET console logging and Go's log write).</summary>
    public Task<string> WaitForStdErrAsync(Func<string, bool> predicate, TimeSpan timeout) => WaitForAsync(stderr, "stderr", predicate, timeout);

    /// <summary>Asks the process to end as Ctrl-C would (SIGTERM), and waits until it has.</summary>
    /// <returns>What it wrote and its exit code; a process that ignores the signal is killed at the deadline and reported as timed out.</returns>
    public async Task<CommandResult> TerminateAsync(TimeSpan timeout)
    {
        if (!process.HasExited)
        {
            await ExternalCommand.RunAsync("/bin/kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]);
        }

        return await WaitForExitAsync(timeout);
    }

    /// <summary>Kills the process tree now (SIGKILL) and returns what it wrote; the exit code is then -1.</summary>
    public async Task<CommandResult> KillAsync()
    {
        ExternalCommand.KillTree(process);
        await process.WaitForExitAsync();
        return Result(timedOut: true);
    }

    /// <summary>Waits for the process to end by itself; kills it at the deadline.</summary>
    public async Task<CommandResult> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            // Also waits until both redirected streams have been read to their end.
            await process.WaitForExitAsync(deadline.Token);
            return Result(timedOut: false);
        }
        catch (OperationCanceledException)
        {
            return await KillAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        ExternalCommand.KillTree(process);
        await process.WaitForExitAsync();
        process.Dispose();
    }

    public override string ToString() =>
        $"`{CommandLine}`{Environment.NewLine}stdout:{Environment.NewLine}{stdout.Text}{Environment.NewLine}stderr:{Environment.NewLine}{stderr.Text}";

    private CommandResult Result(bool timedOut) =>
        new(timedOut ? -1 : process.ExitCode, Joined(stdout), Joined(stderr)) { TimedOut = timedOut, CommandLine = CommandLine };

    private static string Joined(CapturedOutput output) => output.Count == 0 ? "" : output.Text + "\n";

    private async Task<string> WaitForAsync(CapturedOutput output, string stream, Func<string, bool> predicate, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var line = output.WaitForLineAsync(predicate, 0, deadline.Token);
        var exited = process.WaitForExitAsync(deadline.Token);
        try
        {
            if (await Task.WhenAny(line, exited) == exited && !line.IsCompleted)
            {
                await exited;

                // The line may have arrived with the last of the output.
                if (output.Text.Split('\n').FirstOrDefault(predicate) is { } last)
                {
                    return last;
                }

                throw new InvalidOperationException($"The process exited with {process.ExitCode} before the awaited {stream} line. {this}");
            }

            return await line;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"No awaited {stream} line within {timeout.TotalSeconds:0.#} s. {this}");
        }
    }
}
