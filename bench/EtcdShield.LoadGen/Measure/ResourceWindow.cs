using System.Diagnostics;
using EtcdShield.LoadGen.Targets;

namespace EtcdShield.LoadGen.Measure;

/// <summary>
/// CPU time of the proxy, of etcd and of this process between <see cref="Open"/> and <see cref="Close"/>. All three
/// are reported because on a small machine they compete for the same cores: a proxy that is cheap per operation
/// leaves more CPU to etcd and to the clients.
/// </summary>
internal sealed class ResourceWindow
{
    private readonly RunningTarget _target;
    private readonly List<long> _proxyResident = [];
    private readonly List<long> _etcdResident = [];
    private readonly List<long> _proxyAnonymous = [];
    private long _opened;
    private double? _proxyCpu;
    private double _etcdCpu;
    private TimeSpan _selfCpu;

    private ResourceWindow(RunningTarget target) => _target = target;

    /// <summary>How often the resident sets are read inside a window (each read is one /proc/PID/status per process).</summary>
    public static TimeSpan RssInterval { get; } = TimeSpan.FromSeconds(0.5);

    /// <summary>Resets the processes' peak-memory marks now, so the peaks reported are this workload's.</summary>
    public static void ResetPeaks(RunningTarget target)
    {
        if (target.ProxyPid is { } proxy)
        {
            ProcessSampler.ResetPeak(proxy);
        }

        ProcessSampler.ResetPeak(target.EtcdPid);
    }

    public static ResourceWindow Open(RunningTarget target)
    {
        var window = new ResourceWindow(target);
        window._proxyCpu = target.ProxyPid is { } pid ? ProcessSampler.CpuSeconds(pid) : null;
        window._etcdCpu = ProcessSampler.CpuSeconds(target.EtcdPid) ?? 0;
        window._selfCpu = Process.GetCurrentProcess().TotalProcessorTime;
        window._opened = Stopwatch.GetTimestamp();
        window.SampleResident();
        return window;
    }

    /// <summary>Reads the proxy's and etcd's VmRSS now, for the window's steady (median) resident set.</summary>
    public void SampleResident()
    {
        if (_target.ProxyPid is { } pid && ProcessSampler.ResidentBytes(pid) is { } proxy)
        {
            _proxyResident.Add(proxy);
            if (ProcessSampler.AnonymousBytes(pid) is { } anonymous)
            {
                _proxyAnonymous.Add(anonymous);
            }
        }

        if (ProcessSampler.ResidentBytes(_target.EtcdPid) is { } etcd)
        {
            _etcdResident.Add(etcd);
        }
    }

    public ResourceUse Close()
    {
        double? proxy = null;
        long? proxyPeak = null;
        if (_target.ProxyPid is { } pid)
        {
            proxy = ProcessSampler.CpuSeconds(pid) - _proxyCpu;
            proxyPeak = ProcessSampler.PeakResidentBytes(pid);
        }

        SampleResident();

        return new ResourceUse(
            proxy,
            (ProcessSampler.CpuSeconds(_target.EtcdPid) ?? 0) - _etcdCpu,
            (Process.GetCurrentProcess().TotalProcessorTime - _selfCpu).TotalSeconds,
            proxyPeak,
            ProcessSampler.PeakResidentBytes(_target.EtcdPid),
            Median(_proxyResident),
            Median(_etcdResident),
            Stopwatch.GetElapsedTime(_opened).TotalSeconds,
            Median(_proxyAnonymous));
    }

    private static long? Median(List<long> samples)
    {
        if (samples.Count == 0)
        {
            return null;
        }

        samples.Sort();
        return samples[samples.Count / 2];
    }
}
