using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.ReadCache;

/// <summary>
/// The one upstream watch of the whole keyspace that keeps <see cref="RangeCache"/> current. It is opened by the
/// first cacheable read and closed after <c>idleAfter</c> without one, so a proxy that only writes pays nothing;
/// after a failure it is opened again by a read, no sooner than a back-off (1 s, doubling to 30 s).
/// </summary>
/// <remarks>
/// <para>It is closed too when it costs more than the cache saves. Every change anywhere in the keyspace reaches the
/// proxy through it, a second time for a write through the proxy, while only a read answered from the cache pays for
/// it: measured on the bench's unary workloads, a delivered change costs the proxy about as much CPU as a quarter of
/// what an answer from the cache saves the proxy and etcd together. So every <see cref="ChangesPerCheck"/> changes, a
/// cache that answered fewer than one read per <see cref="ChangesPerAnswer"/> of them closes its watch; a read opens
/// it again only after a hold-off (5 s, doubling to 5 min while the cache keeps not paying), and serializable reads go
/// to etcd meanwhile, as with the cache off. A write-heavy proxy (kube-apiserver's writes, Kubernetes'
/// GuaranteedUpdate) so pays one check's changes per hold-off, not every change.</para>
/// </remarks>
/// <remarks>
/// It asks for <c>hasleader</c> like kube-apiserver does, so that etcd ends it when its member loses the leader
/// (and with it every change): the cache then stops serving instead of serving a view that no longer moves. Its
/// events are read for their keys and revisions only; values are never opened here.
/// </remarks>
internal sealed partial class KeyspaceWatch : IDisposable
{
    /// <summary>Changes delivered between two looks at whether the watch pays: at a heavy write rate, well under a second.</summary>
    internal const int ChangesPerCheck = 4096;

    /// <summary>The watch stays open while the cache answers at least one read per this many delivered changes.</summary>
    internal const int ChangesPerAnswer = 4;

    internal static readonly TimeSpan FirstHoldOff = TimeSpan.FromSeconds(5);
    internal static readonly TimeSpan LastHoldOff = TimeSpan.FromMinutes(5);

    private static readonly TimeSpan FirstRetry = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LastRetry = TimeSpan.FromSeconds(30);
    private static readonly ByteString Everything = ByteString.CopyFrom(0);

    private readonly CallInvoker _upstream;
    private readonly RangeCache _cache;
    private readonly ReadCacheMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly TimeSpan _idleAfter;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private long _lastRead;
    private long _retryAt;
    private TimeSpan _retry = FirstRetry;
    private TimeSpan _holdOff = FirstHoldOff;
    private long _changes;
    private int _running;

    public KeyspaceWatch(CallInvoker upstream, RangeCache cache, ReadCacheMetrics metrics, TimeProvider time, TimeSpan idleAfter, ILogger logger)
    {
        _upstream = upstream;
        _cache = cache;
        _metrics = metrics;
        _time = time;
        _idleAfter = idleAfter;
        _logger = logger;
    }

    /// <summary>The task of the watch open now, for tests; a completed task when none is.</summary>
    internal Task Running { get; private set; } = Task.CompletedTask;

    /// <summary>A cacheable read arrived: the watch stays open, and opens if it is not.</summary>
    public void Demand()
    {
        var now = _time.GetTimestamp();
        Volatile.Write(ref _lastRead, now);
        if (Volatile.Read(ref _running) != 0 || now < Volatile.Read(ref _retryAt) || _stopping.IsCancellationRequested)
        {
            return;
        }

        if (Interlocked.CompareExchange(ref _running, 1, 0) == 0)
        {
            Running = Task.Run(RunAsync);
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private async Task RunAsync()
    {
        try
        {
            await WatchAsync().ConfigureAwait(false);
        }
        finally
        {
            _cache.Lost();
            Volatile.Write(ref _running, 0);
        }
    }

    private async Task WatchAsync()
    {
        CancellationTokenSource call;
        try
        {
            call = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        using var owned = call;
        var idle = CloseWhenIdleAsync(call);
        try
        {
            using var watch = new Watch.WatchClient(_upstream).Watch(new Metadata { { "hasleader", "true" } }, cancellationToken: call.Token);
            await watch.RequestStream.WriteAsync(new WatchRequest
            {
                // Fragments: a catch-up batch (up to 1,000 revisions) would otherwise come as one message of any size.
                CreateRequest = new WatchCreateRequest { Key = Everything, RangeEnd = Everything, ProgressNotify = true, Fragment = true },
            }).ConfigureAwait(false);
            while (await watch.ResponseStream.MoveNext(call.Token).ConfigureAwait(false))
            {
                var response = watch.ResponseStream.Current;
                if (response.Canceled)
                {
                    throw new RpcException(new Status(StatusCode.Aborted, $"etcd cancelled the watch: {response.CancelReason}"));
                }

                if (response.Created)
                {
                    _cache.Established(response.Header.Revision);
                    _changes = 0;
                    _retry = FirstRetry;
                    Log.WatchEstablished(_logger, response.Header.Revision);
                    continue;
                }

                _cache.Observed(response.Events, response.Header.Revision, response.Fragment);
                if (!StillPays(response.Events.Count))
                {
                    return;
                }
            }

            throw new RpcException(new Status(StatusCode.Unavailable, "etcd ended the watch"));
        }
        catch (Exception) when (call.IsCancellationRequested)
        {
            // Closed for want of reads, or by shutdown: not a failure.
        }
        catch (Exception e)
        {
            Log.WatchLost(_logger, (e as RpcException)?.StatusCode ?? StatusCode.Unknown, _retry.TotalSeconds);
            _retry = HoldOff(_retry, LastRetry);
        }
        finally
        {
            await call.CancelAsync().ConfigureAwait(false);
            await idle.ConfigureAwait(false);
        }
    }

    /// <summary>Counts <paramref name="delivered"/> changes; every <see cref="ChangesPerCheck"/>, whether the cache answered enough reads to keep the watch.</summary>
    private bool StillPays(int delivered)
    {
        _changes += delivered;
        if (_changes < ChangesPerCheck)
        {
            return true;
        }

        var changes = _changes;
        _changes = 0;
        var answered = _cache.TakeAnswered();
        if (answered * ChangesPerAnswer >= changes)
        {
            _holdOff = FirstHoldOff;
            return true;
        }

        Log.WatchNotPaying(_logger, changes, answered, _holdOff.TotalSeconds);
        _metrics.Suspended();
        _holdOff = HoldOff(_holdOff, LastHoldOff);
        return false;
    }

    /// <summary>No read opens the watch for <paramref name="wait"/>; returns the next wait, twice as long up to <paramref name="longest"/>.</summary>
    private TimeSpan HoldOff(TimeSpan wait, TimeSpan longest)
    {
        Volatile.Write(ref _retryAt, _time.GetTimestamp() + (long)(wait.TotalSeconds * _time.TimestampFrequency));
        return TimeSpan.FromTicks(Math.Min(longest.Ticks, wait.Ticks * 2));
    }

    private async Task CloseWhenIdleAsync(CancellationTokenSource call)
    {
        try
        {
            while (true)
            {
                var quiet = _time.GetElapsedTime(Volatile.Read(ref _lastRead));
                if (quiet >= _idleAfter)
                {
                    await call.CancelAsync().ConfigureAwait(false);
                    return;
                }

                await Task.Delay(_idleAfter - quiet, _time, call.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // The watch ended first.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.WatchLost, EventName = nameof(EventIds.WatchLost), Level = LogLevel.Warning, Message = "The serializable read cache's watch of etcd ended ({Status}); the cache serves nothing until a read opens it again, in {RetrySeconds}s at the earliest")]
        public static partial void WatchLost(ILogger logger, StatusCode status, double retrySeconds);

        [LoggerMessage(EventId = EventIds.WatchNotPaying, EventName = nameof(EventIds.WatchNotPaying), Level = LogLevel.Information, Message = "The serializable read cache's watch of etcd delivered {Changes} changes while the cache answered {Answered} reads; it is closed, and serializable reads go to etcd for {HoldOffSeconds}s at least")]
        public static partial void WatchNotPaying(ILogger logger, long changes, long answered, double holdOffSeconds);

        [LoggerMessage(EventId = EventIds.WatchEstablished, EventName = nameof(EventIds.WatchEstablished), Level = LogLevel.Debug, Message = "The serializable read cache's watch of etcd is up at revision {Revision}")]
        public static partial void WatchEstablished(ILogger logger, long revision);
    }
}
