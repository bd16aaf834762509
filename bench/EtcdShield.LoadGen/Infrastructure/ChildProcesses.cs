using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Globalization;

namespace EtcdShield.LoadGen.Infrastructure;

/// <summary>
/// Every server this run started, so that none outlives it: each is killed when its target run ends, again on
/// Ctrl-C or SIGTERM, and their pids are kept in a file that bench/run.sh's exit trap kills as a last resort
/// (for a SIGKILL of this process, which no handler sees).
/// </summary>
internal static partial class ChildProcesses
{
    private static readonly Lock Gate = new();
    private static readonly HashSet<Process> Live = [];
    private static readonly Dictionary<Process, int> LivePids = [];
    private static readonly List<PosixSignalRegistration> Registrations = [];
    private static readonly List<Action> Cleanups = [];
    private static string? _pidFile;

    /// <summary>Writes live pids to <paramref name="path"/> from now on, and kills everything on exit or Ctrl-C.</summary>
    public static void Track(string path)
    {
        _pidFile = path;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAllNow();

        // SIGTERM and Ctrl-C: kill and clean up first, then let the runtime terminate as it would. Nothing here may wait
        // for a child or touch Process state: the runtime handles SIGCHLD on the same thread that runs these
        // handlers, and a run killed while doing so hung with its servers alive.
        foreach (var signal in new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT })
        {
            Registrations.Add(PosixSignalRegistration.Create(signal, _ =>
            {
                KillAllNow();
                foreach (var cleanup in Cleanups)
                {
                    cleanup();
                }
            }));
        }

        WritePidFile();
    }

    /// <summary>Runs <paramref name="cleanup"/> after the servers are killed on SIGTERM, Ctrl-C or exit, when finally blocks do not run.</summary>
    public static void AtExit(Action cleanup)
    {
        Cleanups.Add(cleanup);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cleanup();
    }

    public static void Add(Process process)
    {
        lock (Gate)
        {
            Live.Add(process);
            LivePids[process] = process.Id;
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
            LivePids.Remove(process);
            WritePidFile();
        }
    }

    /// <summary>SIGKILLs every live server by pid, without waiting: safe on the runtime's signal and exit paths.</summary>
    public static void KillAllNow()
    {
        int[] pids;
        lock (Gate)
        {
            pids = [.. LivePids.Values];
        }

        foreach (var pid in pids)
        {
            _ = NativeMethods.Kill(pid, NativeMethods.SigKill);
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

    private static partial class NativeMethods
    {
        public const int SigKill = 9;

        [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static partial int Kill(int pid, int signal);
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
