using System.Diagnostics;
using System.Text;

namespace EtcdShield.EndToEnd.Infrastructure;

/// <summary>Runs a command-line tool to completion with a hard deadline.</summary>
internal static class ExternalCommand
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    // No BOM: a BOM on stdin would become part of the first token a tool such as `etcdctl txn` reads.
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <param name="fileName">Absolute path of the executable (no shell is involved).</param>
    /// <param name="arguments">Passed verbatim, one argv entry each, so no quoting is needed.</param>
    /// <param name="standardInput">Written to stdin, which is then closed. Stdin is closed even when this is
    /// null so that a tool which reads stdin sees end-of-file instead of waiting for the deadline.</param>
    /// <param name="environment">Added to the inherited environment; a null value removes the variable.</param>
    /// <param name="timeout">After this the whole process tree is killed and the result has <c>TimedOut</c> set.</param>
    public static async Task<CommandResult> RunAsync(
        string fileName,
        IEnumerable<string> arguments,
        string? standardInput = null,
        IReadOnlyDictionary<string, string?>? environment = null,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardInputEncoding = Utf8,
            StandardOutputEncoding = Utf8,
            StandardErrorEncoding = Utf8,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        ApplyEnvironment(startInfo, environment);
        var commandLine = string.Join(' ', startInfo.ArgumentList.Prepend(fileName).Select(Quote));

        using var process = new Process { StartInfo = startInfo };
        process.Start();

        // Both pipes are drained concurrently; reading one after the other deadlocks once the other fills.
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);

        var timedOut = false;
        using (var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            deadline.CancelAfter(timeout ?? DefaultTimeout);

            // Not awaited before the exit: a tool that never reads stdin would otherwise block the
            // write, and with it the deadline. Killing the tool breaks the pipe and ends the write.
            var writing = WriteInputAsync(process, standardInput);
            try
            {
                await process.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                KillTree(process);
                await process.WaitForExitAsync(CancellationToken.None);
                await writing;
                cancellationToken.ThrowIfCancellationRequested();
                timedOut = true;
            }

            await writing;
        }

        return new CommandResult(timedOut ? -1 : process.ExitCode, await stdout, await stderr)
        {
            TimedOut = timedOut,
            CommandLine = commandLine,
        };
    }

    private static async Task WriteInputAsync(Process process, string? standardInput)
    {
        try
        {
            if (standardInput is not null)
            {
                await process.StandardInput.WriteAsync(standardInput);
            }

            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The tool exited without reading all of its input; its exit code and stderr say why.
        }
    }

    /// <summary>Kills a process and its descendants, tolerating one that has already gone.</summary>
    internal static void KillTree(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited (or never started): nothing left to kill.
        }
    }

    internal static void ApplyEnvironment(ProcessStartInfo startInfo, IReadOnlyDictionary<string, string?>? environment)
    {
        if (environment is null)
        {
            return;
        }

        foreach (var (name, value) in environment)
        {
            if (value is null)
            {
                startInfo.Environment.Remove(name);
            }
            else
            {
                startInfo.Environment[name] = value;
            }
        }
    }

    private static string Quote(string argument) =>
        argument.Length > 0 && !argument.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'')
            ? argument
            : $"'{argument.Replace("'", "'\\''", StringComparison.Ordinal)}'";
}
