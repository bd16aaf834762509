using System.Diagnostics;
using System.Globalization;

namespace EtcdShield.LoadGen.Infrastructure;

/// <summary>
/// Every server this run started, so that none outlives it: each is killed when its target run ends, again on
/// Ctrl-C or SIGTERM, and their pids are kept in a file that bench/run.sh's exit trap kills as a last resort
/// (for a SIGKILL of this process, which no handler sees).
/// </summary>
internal static class ChildProcesses
{
    private static readonly Lock Gate = new();
    private static readonly HashSet<Process> Live = [];
    private static string? _pidFile;

    /// <summary>Writes live pids to <paramref name="path"/> from now on, and kills everything on exit or Ctrl-C.</summary>
    public static void Track(string path)
    {
        _pidFile = path;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, _) => KillAll();
        WritePidFile();
    }

    /// <summary>Runs <paramref name="cleanup"/> after the servers are killed on exit, also when SIGTERM skips finally blocks.</summary>
    public static void AtExit(Action cleanup) => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        KillAll();
        cleanup();
    };

    public static void Add(Process process)
    {
        lock (Gate)
        {
            Live.Add(process);
            WritePidFile();
        }
    }

    public static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // It was never started or is already gone.
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }

        lock (Gate)
        {
            Live.Remove(process);
            WritePidFile();
        }
    }

    public static void KillAll()
    {
        List<Process> all;
        lock (Gate)
        {
            all = [.. Live];
        }

        foreach (var process in all)
        {
            Kill(process);
        }
    }

    private static void WritePidFile()
    {
        if (_pidFile is null)
        {
            return;
        }

        var pids = new List<string>();
        foreach (var process in Live)
        {
            try
            {
                pids.Add(process.Id.ToString(CultureInfo.InvariantCulture));
            }
            catch (InvalidOperationException)
            {
            }
        }

        File.WriteAllLines(_pidFile, pids);
    }
}
