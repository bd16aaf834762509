using EtcdShield.LoadGen.Infrastructure;

namespace EtcdShield.LoadGen.Targets;

/// <summary>A started target: where clients connect, which processes to measure, and how to stop them all.</summary>
internal sealed class RunningTarget : IDisposable
{
    private readonly ServerProcess _etcd;
    private readonly ServerProcess? _proxy;
    private readonly string? _directory;

    /// <param name="directory">The target's own etcd data, deleted with it; null when the etcd is shared (<see cref="SharedEtcd"/>) and outlives this target.</param>
    /// <param name="variant">The --shield-variant this proxy runs with, if any.</param>
    public RunningTarget(TargetKind kind, Uri endpoint, ServerProcess etcd, ServerProcess? proxy, string? directory, string? variant = null)
    {
        Kind = kind;
        Target = new BenchTarget(kind, variant);
        Endpoint = endpoint;
        _etcd = etcd;
        _proxy = proxy;
        _directory = directory;
    }

    public TargetKind Kind { get; }

    /// <summary>The kind and variant: what the unary workloads' rows are keyed by.</summary>
    public BenchTarget Target { get; }

    /// <summary>http://127.0.0.1:P for plaintext etcd, https for every other target.</summary>
    public Uri Endpoint { get; }

    public bool UsesTls => Endpoint.Scheme == Uri.UriSchemeHttps;

    public int EtcdPid => _etcd.Pid;

    public int? ProxyPid => _proxy?.Pid;

    /// <summary>Which target process died during the run, if one did (its result is then void).</summary>
    public string? Failure =>
        _proxy is { HasExited: true } ? $"{_proxy.Name} exited (log {_proxy.LogFile})"
        : _etcd.HasExited ? $"{_etcd.Name} exited (log {_etcd.LogFile})"
        : null;

    public void Dispose()
    {
        // Proxy first, so it never sees its etcd vanish and starts reconnecting in the measured CPU of nothing.
        _proxy?.Dispose();
        if (_directory is null)
        {
            return;
        }

        _etcd.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A data directory we could not remove costs disk, not correctness.
        }
    }
}
