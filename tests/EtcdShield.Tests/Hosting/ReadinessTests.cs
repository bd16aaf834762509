using EtcdShield.Hosting;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.Hosting;

public sealed class ReadinessTests
{
    private readonly FakeTimeProvider _time = new();
    private readonly FakeCheck _etcd = new("etcd");
    private readonly FakeCheck _keys = new("key_provider");

    private Readiness NewReadiness() => new([_etcd, _keys], _time);

    [Fact]
    public async Task Ready_when_every_check_passes_and_answered_ok()
    {
        var report = await NewReadiness().CheckAsync();

        Assert.True(report.Ready);
        Assert.Equal("ok", report.Format("readyz", verbose: false));
        Assert.Equal("[+]etcd ok\n[+]key_provider ok\nreadyz check passed\n", report.Format("readyz", verbose: true));
    }

    [Fact]
    public async Task A_failing_check_makes_it_not_ready_and_the_answer_names_it_with_its_reason()
    {
        _keys.Reason = "key provider unreachable: no HSM session";

        var report = await NewReadiness().CheckAsync();

        Assert.False(report.Ready);
        Assert.Equal("[+]etcd ok\n[-]key_provider failed: key provider unreachable: no HSM session\nreadyz check failed\n", report.Format("readyz", verbose: false));
    }

    [Fact]
    public async Task Probes_within_the_cache_time_share_one_answer_and_ask_each_dependency_once()
    {
        var readiness = NewReadiness();

        for (var i = 0; i < 50; i++)
        {
            await readiness.CheckAsync();
        }

        _time.Advance(Readiness.CacheFor - TimeSpan.FromMilliseconds(1));
        await readiness.CheckAsync();

        Assert.Equal(1, _etcd.Calls);
        Assert.Equal(1, _keys.Calls);
    }

    [Fact]
    public async Task Probes_while_a_round_is_in_flight_wait_for_it_instead_of_starting_another()
    {
        _etcd.Hold = new TaskCompletionSource();
        var readiness = NewReadiness();

        var probes = Enumerable.Range(0, 20).Select(_ => readiness.CheckAsync()).ToList();
        await _etcd.Reached.Task;
        _etcd.Hold.SetResult();
        var reports = await Task.WhenAll(probes);

        Assert.Equal(1, _etcd.Calls);
        Assert.All(reports, r => Assert.Same(reports[0], r));
    }

    [Fact]
    public async Task After_the_cache_time_a_probe_asks_again_and_sees_the_recovery()
    {
        _etcd.Reason = "etcd unreachable: Unavailable: connection refused";
        var readiness = NewReadiness();
        var down = await readiness.CheckAsync();

        _etcd.Reason = null;
        var stillCached = await readiness.CheckAsync();
        _time.Advance(Readiness.CacheFor);
        var up = await readiness.CheckAsync();

        Assert.False(down.Ready);
        Assert.False(stillCached.Ready);
        Assert.True(up.Ready);
        Assert.Equal(2, _etcd.Calls);
    }

    [Fact]
    public async Task A_check_that_does_not_answer_within_the_deadline_makes_it_not_ready()
    {
        _keys.Hold = new TaskCompletionSource();
        var readiness = NewReadiness();

        var probe = readiness.CheckAsync();
        await _keys.Reached.Task;
        _time.Advance(Readiness.Deadline);
        var report = await probe;

        Assert.False(report.Ready);
        Assert.Equal(new ReadinessResult("key_provider", "no answer within 2s"), report.Results[1]);
    }

    [Fact]
    public async Task A_check_that_throws_fails_closed()
    {
        _etcd.Throw = new InvalidOperationException("broken");

        var report = await NewReadiness().CheckAsync();

        Assert.False(report.Ready);
        Assert.Equal("check failed: InvalidOperationException: broken", report.Results[0].Reason);
    }

    [Fact]
    public async Task The_gauge_shows_the_last_finished_round_and_each_scrape_asks_for_the_next()
    {
        var readiness = NewReadiness();
        var meters = TestMeterFactory.Create();
        _ = new ReadinessMetrics(readiness, meters);
        using var ready = new MetricCollector<int>(meters, ReadinessMetrics.MeterName, "etcdshield.ready");
        string Scrape()
        {
            ready.Clear();
            ready.RecordObservableInstruments();
            return string.Join(",", ready.GetMeasurementSnapshot().Select(m => $"{m.Tags["check"]}={m.Value}"));
        }

        // Before any round has finished there is nothing to show; the scrape starts the first round.
        _etcd.Hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = Scrape();
        await _etcd.Reached.Task;
        _etcd.Hold.SetResult();
        _etcd.Hold = null;
        await readiness.CheckAsync();
        _keys.Reason = "key provider unreachable: no HSM session";
        var cached = Scrape();
        _time.Advance(Readiness.CacheFor);
        var stale = Scrape();
        await readiness.CheckAsync();
        var next = Scrape();

        Assert.Equal("", first);
        Assert.Equal("etcd=1,key_provider=1", cached);
        Assert.Equal("etcd=1,key_provider=1", stale);
        Assert.Equal("etcd=1,key_provider=0", next);
        Assert.Equal(2, _keys.Calls);
    }

    private sealed class FakeCheck(string name) : IReadinessCheck
    {
        private int _calls;

        public string Name => name;

        public string? Reason { get; set; }

        public Exception? Throw { get; set; }

        public TaskCompletionSource? Hold { get; set; }

        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Calls => Volatile.Read(ref _calls);

        public async Task<string?> CheckAsync(TimeSpan deadline, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            Reached.TrySetResult();
            if (Hold is { } hold)
            {
                await hold.Task.WaitAsync(cancellationToken);
            }

            return Throw is { } e ? throw e : Reason;
        }
    }
}
