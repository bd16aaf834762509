using System.Globalization;

namespace EtcdShield.LoadGen.Measure;

/// <summary>
/// Reads another process's CPU time and memory from /proc, the same numbers top and ps show, without attaching
/// to it: what the proxy costs must be measured from outside, with nothing added to the proxy.
/// </summary>
internal static class ProcessSampler
{
    private static readonly Lazy<double> TicksPerSecond = new(ReadClockTicks);

    /// <summary>User plus system CPU seconds the process has used so far; null once it is gone.</summary>
    public static double? CpuSeconds(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }

        // The command name (field 2) is in parentheses and may contain spaces: fields are counted after the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');

        // Fields 14 (utime) and 15 (stime) of proc(5), i.e. indexes 11 and 12 after the state field.
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks / TicksPerSecond.Value;
    }

    /// <summary>Peak resident set (VmHWM) in bytes since the process started or <see cref="ResetPeak"/>.</summary>
    public static long? PeakResidentBytes(int pid) => StatusKilobytes(pid, "VmHWM:") * 1024;

    public static long? ResidentBytes(int pid) => StatusKilobytes(pid, "VmRSS:") * 1024;

    /// <summary>
    /// The anonymous part of the resident set (RssAnon: heap, stacks, JIT'd code), without the file-backed pages of
    /// mapped images (RssFile) and shared memory (RssShmem): what the process holds privately.
    /// </summary>
    public static long? AnonymousBytes(int pid) => StatusKilobytes(pid, "RssAnon:") * 1024;

    /// <summary>
    /// Resets VmHWM to the current resident set (writing 5 to clear_refs, Linux 4.0+), so each workload reports its
    /// own peak rather than the largest of every workload before it. False when the kernel refuses.
    /// </summary>
    public static bool ResetPeak(int pid)
    {
        try
        {
            File.WriteAllText($"/proc/{pid}/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long? StatusKilobytes(int pid, string field)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(field, StringComparison.Ordinal))
                {
                    var digits = line[field.Length..].Trim().Split(' ')[0];
                    return long.Parse(digits, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }

        return null;
    }

    private static double ReadClockTicks()
    {
        // USER_HZ is 100 on every mainstream Linux build; getconf confirms it where it is installed.
        try
        {
            using var getconf = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("getconf", "CLK_TCK")
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            });
            if (getconf is not null)
            {
                var text = getconf.StandardOutput.ReadToEnd().Trim();
                getconf.WaitForExit();
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var hz) && hz > 0)
                {
                    return hz;
                }
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }

        return 100;
    }
}
