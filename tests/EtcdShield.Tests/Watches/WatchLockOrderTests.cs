using EtcdShield.Configuration;
using EtcdShield.Tests.Relay;
using Grpc.Core;

namespace EtcdShield.Tests.Watches;

/// <summary>
/// The watch locks are taken in one order, hub, then feed, then session, so nothing under a feed's or a session's
/// lock may wait for the hub's. The hub holds its lock while it makes an upstream stream (a create with metadata of
/// its own); these tests hold it there, the in-memory etcd blocking the call, and show that meanwhile a feed still
/// delivers, a progress tick still runs and a watch still rejoins its feed. Each of those used to take the hub's lock
/// inside its own: with a create of the same range at that moment (the hub's lock held, waiting for the feed's) the
/// proxy deadlocked, as the end-to-end kill tests did when every client resumed its watches at once.
/// </summary>
public sealed class WatchLockOrderTests : IDisposable
{
    /// <summary>How long a step that needs no lock the hub holds is given; a step that waits for it never ends in time.</summary>
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private readonly HeldOpener _opener = new();
    private readonly RelayBed _bed;
    private readonly WatchEtcd _etcd;
    private readonly ManualResetEventSlim _release = new();
    private readonly TaskCompletionSource _holding = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _armed;

    public WatchLockOrderTests()
    {
        _bed = new RelayBed(watches: new ShieldOptions { WatchProgressNotifyInterval = Interval }, watchRewriter: _opener);
        _etcd = new WatchEtcd(_bed.Etcd);
    }

    public void Dispose()
    {
        _release.Set();
        _bed.Dispose();
        _release.Dispose();
    }

    [Fact]
    public async Task A_feed_delivers_its_responses_while_the_hub_holds_its_lock()
    {
        var client = new WatchClient(_bed);
        await client.WatchAsync("/app/", "/app0");
        var other = await HoldHubLockAsync();

        var put = _etcd.Put("/app/a", "1");
        var delivered = await QuicklyAsync(client.NextAsync(), "the feed's response waited for the hub's lock");
        ReleaseHubLock();

        Assert.Equal(put, Assert.Single(delivered.Events).Kv.ModRevision);
        Assert.True((await other.NextAsync()).Created);
    }

    [Fact]
    public async Task A_progress_tick_runs_while_the_hub_holds_its_lock()
    {
        var client = new WatchClient(_bed);
        var created = await client.WatchAsync("/app/", "/app0", progressNotify: true);
        var other = await HoldHubLockAsync();

        // The fake clock runs the tick on the thread that advances it.
        await QuicklyAsync(Task.Run(() => _bed.Time.Advance(Interval)), "the progress tick waited for the hub's lock");
        var progress = await QuicklyAsync(client.NextAsync(), "no progress notification");
        ReleaseHubLock();

        Assert.True(progress is { WatchId: 0, Created: false, Canceled: false, Events.Count: 0 });
        Assert.Equal(created.Header.Revision, progress.Header.Revision);
        Assert.True((await other.NextAsync()).Created);
    }

    [Fact]
    public async Task A_watch_with_a_progress_request_waiting_rejoins_its_feed_while_the_hub_holds_its_lock_and_is_answered_after()
    {
        var head = new WatchClient(_bed);
        await head.WatchAsync("/app/", "/app0");
        var start = _etcd.Put("/app/1", "a");
        var last = _etcd.Put("/app/2", "b");
        await head.NextAsync();
        await head.NextAsync();

        // A watch from the past is served by its own upstream watch, whose catch-up batch is held. Its progress
        // request waits for the watch to be shared again; the refused create after it is answered once it was read.
        _opener.Armed = true;
        var late = new WatchClient(_bed);
        var created = await late.WatchAsync("/app/", "/app0", start: start);
        await _opener.Held.Task.WaitAsync(Quick);
        late.RequestProgress();
        var refused = await late.WatchAsync("/app/z", "/app/a");
        var other = await HoldHubLockAsync();

        // The batch goes on: the watch is given it and rejoins the feed, which then delivers to both.
        _opener.Release();
        await QuicklyAsync(_etcd.ReceivedAsync(r => r.CancelRequest is not null), "the watch did not rejoin its feed");
        var after = _etcd.Put("/app/3", "c");
        var toHead = await QuicklyAsync(head.NextAsync(), "the feed's response waited for the rejoin, which waited for the hub's lock");
        var seen = new List<long>();
        while (!seen.Contains(after))
        {
            seen.AddRange((await QuicklyAsync(late.NextAsync(), "the rejoined watch got no events")).Events.Select(e => e.Kv.ModRevision));
        }

        // Its progress request is answered once the hub's lock is free to find the stream to ask on.
        Assert.False(late.HasWaiting);
        ReleaseHubLock();
        var progress = await late.NextAsync();

        Assert.True(created.Created);
        Assert.True(refused is { WatchId: -1, Canceled: true });
        Assert.Equal(after, Assert.Single(toHead.Events).Kv.ModRevision);
        Assert.Equal([start, last, after], seen);
        Assert.True(progress is { WatchId: -1, Created: false, Events.Count: 0 });
        Assert.True(progress.Header.Revision >= after, $"progress at {progress.Header.Revision}, below {after}");
        Assert.True((await other.NextAsync()).Created);
    }

    /// <summary>
    /// Makes the hub hold its lock: a client with metadata no stream has yet creates a watch, and the hub, under its
    /// lock, makes an upstream stream for it, whose call the in-memory etcd blocks until <see cref="ReleaseHubLock"/>.
    /// </summary>
    private async Task<WatchClient> HoldHubLockAsync()
    {
        _bed.Etcd.OpeningStream = method =>
        {
            if (method == "Watch/Watch" && Interlocked.Exchange(ref _armed, 1) == 0)
            {
                _holding.TrySetResult();

                // Bounded, so that a product that waits for this lock under its own is released and fails its test.
                _release.Wait(TimeSpan.FromSeconds(30));
            }
        };
        var other = new WatchClient(_bed, headers: new Metadata { { "hasleader", "true" } });
        other.Create("/app/", "/app0");
        await _holding.Task.WaitAsync(Quick);
        return other;
    }

    private void ReleaseHubLock() => _release.Set();

    private static async Task<T> QuicklyAsync<T>(Task<T> step, string otherwise)
    {
        try
        {
            return await step.WaitAsync(Quick);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{otherwise} (nothing within {Quick.TotalSeconds:0} s)");
            throw;
        }
    }

    private static async Task QuicklyAsync(Task step, string otherwise)
    {
        try
        {
            await step.WaitAsync(Quick);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{otherwise} (nothing within {Quick.TotalSeconds:0} s)");
        }
    }
}
