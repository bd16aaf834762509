using System.Diagnostics;
using System.Runtime.InteropServices;

namespace EtcdShield.LoadGen.Report;

/// <summary>What the numbers were measured on, read from /proc and the tools themselves, never typed in by hand.</summary>
internal sealed record MachineInfo(
    int Cores,
    string CpuModel,
    string Memory,
    string Kernel,
    string Os,
    string EtcdVersion,
    string DotnetRuntime,
    string DotnetSdk,
    string LoadAverageAtStart)
{
    public static MachineInfo Collect() => new(
        Environment.ProcessorCount,
        ProcField("/proc/cpuinfo", "model name") ?? "unknown",
        ProcField("/proc/meminfo", "MemTotal") is { } kb ? $"{long.Parse(kb.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024 / 1024.0:0.0} GiB" : "unknown",
        ReadFirstLine("/proc/sys/kernel/osrelease") ?? "unknown",
        OsName(),
        Run("/usr/bin/etcd", "--version") ?? "unknown",
        RuntimeInformation.FrameworkDescription,
        Run("dotnet", "--version") ?? "unknown",
        LoadAverage());

    public static string LoadAverage() => string.Join(' ', (ReadFirstLine("/proc/loadavg") ?? "").Split(' ').Take(3));

    private static string? ProcField(string path, string name)
    {
        try
        {
            return File.ReadLines(path)
                .Where(l => l.StartsWith(name, StringComparison.Ordinal))
                .Select(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim())
                .FirstOrDefault();
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string OsName()
    {
        try
        {
            return File.ReadLines("/etc/os-release")
                .Where(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))
                .Select(l => l["PRETTY_NAME=".Length..].Trim('"'))
                .FirstOrDefault() ?? RuntimeInformation.OSDescription;
        }
        catch (IOException)
        {
            return RuntimeInformation.OSDescription;
        }
    }

    private static string? ReadFirstLine(string path)
    {
        try
        {
            return File.ReadLines(path).FirstOrDefault()?.Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string? Run(string tool, string arguments)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(tool, arguments)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            });
            if (process is null)
            {
                return null;
            }

            var first = process.StandardOutput.ReadLine()?.Trim();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit(10_000);
            return first;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
