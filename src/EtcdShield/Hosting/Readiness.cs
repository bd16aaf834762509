namespace EtcdShield.Hosting;

/// <summary>One thing the proxy needs to serve: etcd, the key provider.</summary>
internal interface IReadinessCheck
{
    /// <summary>The check's name in <c>/readyz</c>'s answer.</summary>
    string Name { get; }

    /// <summary>Null when the dependency answered within <paramref name="deadline"/>, else why not.</summary>
    Task<string?> CheckAsync(TimeSpan deadline, CancellationToken cancellationToken);
}

/// <summary>
/// Whether the proxy can serve now: every <see cref="IReadinessCheck"/> passed. Probes come every few seconds
/// from each kubelet or load balancer, and may come in storms; so one answer serves every probe for
/// <see cref="CacheFor"/> after it was made, at most one round of checks is in flight (later probes wait for
/// it), and each check has <see cref="Deadline"/> to answer. etcd and the HSM or KMS plugin are then asked at
/// most once per <see cref="CacheFor"/>, whatever the probe rate.
/// </summary>
internal sealed class Readiness
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(2);

    private readonly IReadOnlyList<IReadinessCheck> _checks;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private Task<ReadinessReport>? _current;
    private long _answeredAt;
    private volatile ReadinessReport? _latest;

    public Readiness(IEnumerable<IReadinessCheck> checks, TimeProvider time)
    {
        _checks = checks.ToList();
        _time = time;
    }

    /// <summary>The last round's answer, however old, or null before the first round has finished (the metrics show it).</summary>
    public ReadinessReport? Latest => _latest;

    /// <summary>The answer made less than <see cref="CacheFor"/> ago, the round in flight, or a new round.</summary>
    public Task<ReadinessReport> CheckAsync()
    {
        lock (_lock)
        {
            if (_current is { } current && (!current.IsCompleted || _time.GetElapsedTime(_answeredAt) < CacheFor))
            {
                return current;
            }

            _current = RunAsync();
            return _current;
        }
    }

    private async Task<ReadinessReport> RunAsync()
    {
        // Out of the lock: a check that completes at once must not run under it.
        await Task.Yield();
        var results = await Task.WhenAll(_checks.Select(RunAsync)).ConfigureAwait(false);
        lock (_lock)
        {
            _answeredAt = _time.GetTimestamp();
        }

        var report = new ReadinessReport(results);
        _latest = report;
        return report;
    }

    private async Task<ReadinessResult> RunAsync(IReadinessCheck check)
    {
        using var deadline = new CancellationTokenSource(Deadline, _time);
        try
        {
            // WaitAsync as well as the token: a check that ignores its token still cannot hold the answer.
            var reason = await check.CheckAsync(Deadline, deadline.Token).WaitAsync(Deadline, _time).ConfigureAwait(false);
            return new ReadinessResult(check.Name, reason);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            return new ReadinessResult(check.Name, $"no answer within {Deadline.TotalSeconds:0}s");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Fail closed: a check that breaks says "not ready", and why.
            return new ReadinessResult(check.Name, $"check failed: {e.GetType().Name}: {e.Message}");
        }
    }
}

/// <summary>One check's outcome: <see cref="Reason"/> is null when it passed.</summary>
internal sealed record ReadinessResult(string Name, string? Reason);

/// <summary>
/// A round of checks, answered in the shape of etcd's and Kubernetes' <c>/readyz</c>: <c>ok</c> when all passed,
/// and with <c>?verbose</c> or on failure one line per check (<c>[+]etcd ok</c>, <c>[-]etcd failed: reason</c>)
/// and a last line saying whether the check passed.
/// </summary>
internal sealed record ReadinessReport(IReadOnlyList<ReadinessResult> Results)
{
    public bool Ready => Results.All(r => r.Reason is null);

    public string Format(string endpoint, bool verbose)
    {
        if (Ready && !verbose)
        {
            return "ok";
        }

        var lines = Results.Select(r => r.Reason is null ? $"[+]{r.Name} ok" : $"[-]{r.Name} failed: {r.Reason}").ToList();
        lines.Add($"{endpoint} check {(Ready ? "passed" : "failed")}");
        return string.Join('\n', lines) + "\n";
    }
}
