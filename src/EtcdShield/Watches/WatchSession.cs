using System.Threading.Channels;
using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using EtcdShield.Streams;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Watches;

/// <summary>
/// One client Watch stream served from shared upstream watches. It keeps etcd's rules for the client's watches
/// (ids, created and cancelled answers and their reasons, start revisions, filters, fragments, progress), judges
/// each watch when it is created and again whenever the policy or trust changes (the writer checks, by reference,
/// before every write), and writes everything through one queue bounded by <c>--watch-queue-bytes</c>: a feed
/// that finds the queue full demotes its watch to an upstream watch of the session's own, which waits for space.
/// Lock order: hub, feed, session (so nothing under the session's lock takes the hub's: what needs it goes to the
/// control loop); nothing awaits under the session's lock.
/// </summary>
internal sealed partial class WatchSession : IWatchSession
{
    private readonly WatchHub _hub;
    private readonly CallScope _scope;
    private readonly OpenStream _open;
    private readonly IAsyncStreamReader<IMessage> _requests;
    private readonly IServerStreamWriter<IMessage> _responses;
    private readonly object _lock = new();
    private readonly object _judging = new();
    private readonly Dictionary<long, ClientWatch> _watches = [];

    // The watches on their own upstream watch (Private): a drained queue tries these to rejoin, not every watch.
    private readonly HashSet<ClientWatch> _private = [];
    private readonly Queue<Outbound> _queue = new();
    private readonly Channel<Func<Task>> _control = Channel.CreateUnbounded<Func<Task>>(new UnboundedChannelOptions { SingleReader = true });
    private TaskCompletionSource? _wake;
    private TaskCompletionSource? _space;
    private UpstreamWatchStream? _own;
    private ITimer? _ticks;
    private Caller _judged;
    private long _queuedBytes;
    private long _keyBytes;
    private long _nextId;
    private int _unshared;
    private int _progressWatches;
    private bool _progressWanted;
    private bool _progressAsked;
    private bool _disposed;

    public WatchSession(WatchHub hub, CallScope scope, OpenStream open, IAsyncStreamReader<IMessage> requests, IServerStreamWriter<IMessage> responses)
    {
        _hub = hub;
        _scope = scope;
        _open = open;
        _requests = requests;
        _responses = responses;
        _judged = scope.Caller;
        Headers = WatchHub.SharedHeaders(scope.Call.Options.Headers);
        HeadersKey = WatchHub.KeyOf(Headers);
    }

    public Exception? Failure { get; private set; }

    /// <summary>The client's metadata that goes to etcd (<see cref="WatchHub.SharedHeaders"/>); watches share a feed only with the same.</summary>
    public Metadata? Headers { get; }

    public string HeadersKey { get; }

    private CancellationToken Stopping => _scope.Stopping;

    public async Task RunAsync()
    {
        var writing = WriteAsync();
        var controlling = ControlAsync();
        var judging = JudgeOnChangesAsync();
        var expiring = ExpireAsync();
        try
        {
            await ReadAsync().ConfigureAwait(false);

            // The client has closed its side; as etcd does, the stream goes on answering until the call ends.
            await Task.Delay(Timeout.Infinite, Stopping).ConfigureAwait(false);
        }
        catch (Exception e) when (Stopping.IsCancellationRequested)
        {
            _ = e;
        }
        catch (Exception e)
        {
            Fail(e);
        }

        await _scope.EndAsync().ConfigureAwait(false);
        await Task.WhenAll(writing, controlling, judging, expiring).ConfigureAwait(false);
        if (Failure is { } failure)
        {
            throw failure;
        }

        Stopping.ThrowIfCancellationRequested();
    }

    public async ValueTask DisposeAsync()
    {
        ClientWatch[] all;
        lock (_lock)
        {
            _disposed = true;
            all = [.. _watches.Values];
            _watches.Clear();
            _private.Clear();
            foreach (var watch in all)
            {
                watch.State = WatchState.Cancelled;
                watch.MarkAnswered();
            }

            _hub.Budget.Release(_queuedBytes);
            _queuedBytes = 0;
            _queue.Clear();
        }

        foreach (var watch in all)
        {
            await LeaveFeedAsync(watch).ConfigureAwait(false);
        }

        _control.Writer.TryComplete();
        if (_ticks is not null)
        {
            await _ticks.DisposeAsync().ConfigureAwait(false);
        }

        if (_own is not null)
        {
            await _own.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Ends the stream with <paramref name="failure"/> (the first one given is the one the client hears).</summary>
    public void Fail(Exception failure)
    {
        lock (_lock)
        {
            Failure ??= failure;
        }

        try
        {
            _ = _scope.EndAsync();
        }
        catch (ObjectDisposedException)
        {
            // The call is already over.
        }
    }

    /// <summary>A client's deadline ends its watch stream as it ends a relayed one: DEADLINE_EXCEEDED.</summary>
    private async Task ExpireAsync()
    {
        var deadline = _scope.Context.Deadline;
        if (deadline == DateTime.MaxValue)
        {
            return;
        }

        try
        {
            var left = deadline - DateTime.UtcNow;
            if (left > TimeSpan.Zero)
            {
                await Task.Delay(left, _hub.Time, Stopping).ConfigureAwait(false);
            }

            Fail(new RpcException(new Status(StatusCode.DeadlineExceeded, "context deadline exceeded")));
        }
        catch (OperationCanceledException) when (Stopping.IsCancellationRequested)
        {
            // The stream ended first.
        }
    }

    /// <summary>The client's requests, one at a time; a create is answered before the next request is read, so answers keep the requests' order.</summary>
    private async Task ReadAsync()
    {
        while (await ReadFromClientAsync().ConfigureAwait(false))
        {
            JudgeIfChanged();
            var caller = _judged;
            switch (_requests.Current)
            {
                case WatchRequest { CreateRequest: { } create } request:
                    await CreateAsync(request, create, caller).ConfigureAwait(false);
                    break;
                case WatchRequest { CancelRequest: { } cancel }:
                    await CancelAsync(cancel.WatchId).ConfigureAwait(false);
                    break;
                case WatchRequest { ProgressRequest: not null }:
                    RequestProgress();
                    break;
                default:
                    break;
            }

            // A client that sends faster than it reads waits here: its answers are bounded by its queue.
            await WaitForSpaceAsync(0, reserve: false).ConfigureAwait(false);
        }
    }

    private async Task<bool> ReadFromClientAsync()
    {
        try
        {
            return await _requests.MoveNext(Stopping).ConfigureAwait(false);
        }
        catch (IOException)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "context canceled"));
        }
    }

    private async Task CreateAsync(WatchRequest request, WatchCreateRequest create, Caller caller)
    {
        if (_scope.AuthorizeWatchCreate(caller, request) is { } denial)
        {
            Answer(Refused(create.WatchId, created: true, StreamJudge<IMessage>.CancelReason(denial)));
            return;
        }

        var range = KeyRange.FromEtcd(create.Key, create.RangeEnd);
        var key = create.Key.IsEmpty ? ByteString.CopyFrom(0) : create.Key;
        var fromKey = create.RangeEnd.Length == 1 && create.RangeEnd[0] == 0;
        ClientWatch watch;
        lock (_lock)
        {
            if (Full(range) is { } full)
            {
                Enqueue(Refused(create.WatchId, created: true, $"rpc error: code = ResourceExhausted desc = {full}"), null);
                return;
            }

            // etcd checks the range, then the id (mvcc watchStream.Watch).
            var id = create.WatchId;
            if (!create.RangeEnd.IsEmpty && !fromKey && key.Span.SequenceCompareTo(create.RangeEnd.Span) >= 0)
            {
                Enqueue(EtcdRefused("mvcc: watcher range is empty"), null);
                return;
            }

            if (id != 0 && _watches.ContainsKey(id))
            {
                Enqueue(EtcdRefused("mvcc: duplicate watch ID provided on the WatchStream"), null);
                return;
            }

            if (id == 0)
            {
                while (_watches.ContainsKey(_nextId))
                {
                    _nextId++;
                }

                id = _nextId++;
            }

            watch = new ClientWatch(this, id, create, range) { State = WatchState.Creating };
            _watches[id] = watch;
            _keyBytes += watch.KeyBytes;
            _unshared++;
            if (watch.ProgressNotify && _progressWatches++ == 0)
            {
                _ticks ??= _hub.Time.CreateTimer(_ => Tick(), null, _hub.ProgressInterval, _hub.ProgressInterval);
            }
        }

        var feedKey = new FeedKey(key, fromKey ? ByteString.Empty : create.RangeEnd, create.PrevKv, HeadersKey);
        await _hub.JoinAsync(watch, feedKey, Headers).ConfigureAwait(false);
        await watch.Answered.WaitAsync(Stopping).ConfigureAwait(false);
    }

    private string? Full(KeyRange range)
    {
        if (_watches.Count >= WatchBook.MaxWatches)
        {
            return $"etcdshield: too many watches on one stream (at most {WatchBook.MaxWatches})";
        }

        return _keyBytes + range.Start.Length + (range.End?.Length ?? 0) > WatchBook.MaxKeyBytes
            ? $"etcdshield: the watches on one stream name too many key bytes (at most {WatchBook.MaxKeyBytes})"
            : null;
    }

    private async Task CancelAsync(long id)
    {
        ClientWatch? watch;
        lock (_lock)
        {
            if (!_watches.TryGetValue(id, out watch))
            {
                // etcd says nothing about a watch it does not have.
                return;
            }

            Enqueue(new WatchResponse { Header = _hub.Header(), WatchId = id, Canceled = true }, null);
            Forget(watch);
        }

        await LeaveFeedAsync(watch).ConfigureAwait(false);
    }

    /// <summary>Takes a watch off the session (under the lock): its queued frames are dropped from now on.</summary>
    private void Forget(ClientWatch watch)
    {
        if (watch.State == WatchState.Cancelled)
        {
            return;
        }

        if (watch.State != WatchState.Shared)
        {
            _unshared--;
        }

        if (watch.ProgressNotify)
        {
            _progressWatches--;
        }

        watch.State = WatchState.Cancelled;
        watch.MarkAnswered();
        _watches.Remove(watch.Id);
        _private.Remove(watch);
        _keyBytes -= watch.KeyBytes;
        if (watch.PrivateId != 0)
        {
            var own = watch.PrivateId;
            watch.PrivateId = 0;
            Control(() => _own!.CancelAsync(own));
        }

        TryAnswerProgress();
    }

    private async Task LeaveFeedAsync(ClientWatch watch)
    {
        if (watch.Feed is { } feed && feed.Remove(watch))
        {
            await _hub.ReleaseAsync(feed).ConfigureAwait(false);
        }
    }

    /// <summary>Queues an answer of the proxy's own (created, cancelled, progress); it is held whatever the limit, and is bounded by the requests the client may send while its queue is full.</summary>
    private void Answer(IMessage message)
    {
        lock (_lock)
        {
            Enqueue(message, null);
        }
    }

    /// <summary>Queues a message under the lock, charged whatever the limits; with <paramref name="watch"/>, dropped if the watch is gone by the time it would be written (an answer the client must get, such as created, names none).</summary>
    private void Enqueue(IMessage message, ClientWatch? watch)
    {
        var size = message.CalculateSize();
        _hub.Budget.Force(size);
        _queuedBytes += size;
        Push(new Outbound(message, watch, size));
    }

    private void Push(Outbound item)
    {
        if (_disposed)
        {
            _hub.Budget.Release(item.Bytes);
            _queuedBytes -= item.Bytes;
            return;
        }

        _queue.Enqueue(item);
        if (_wake is { } wake)
        {
            _wake = null;
            wake.TrySetResult();
        }
    }

    /// <summary>Reserves room for <paramref name="bytes"/> in the queue and the budget, under the lock. A lone response always fits, so a response larger than the limit still goes.</summary>
    private bool TryReserve(long bytes)
    {
        if (_queuedBytes > 0 && _queuedBytes + bytes > _hub.QueueBytes)
        {
            return false;
        }

        if (!_hub.Budget.TryCharge(bytes))
        {
            if (_queuedBytes > 0)
            {
                return false;
            }

            _hub.Budget.Force(bytes);
        }

        _queuedBytes += bytes;
        return true;
    }

    private void Unreserve(long bytes)
    {
        _queuedBytes -= bytes;
        _hub.Budget.Release(bytes);
        WakeSpace();
    }

    private void WakeSpace()
    {
        if (_space is { } space)
        {
            _space = null;
            space.TrySetResult();
        }
    }

    /// <summary>Waits until the queue has room for <paramref name="bytes"/>; with <paramref name="reserve"/>, takes it.</summary>
    private async Task WaitForSpaceAsync(long bytes, bool reserve)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (reserve ? TryReserve(bytes) : _queuedBytes < _hub.QueueBytes)
                {
                    return;
                }

                _space ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _space.Task;
            }

            await wait.WaitAsync(Stopping).ConfigureAwait(false);
        }
    }

    /// <summary>The one writer to the client: judges again when the policy or trust changed, drops frames of watches gone, writes in order.</summary>
    private async Task WriteAsync()
    {
        try
        {
            while (true)
            {
                Outbound item;
                Task? wait = null;
                lock (_lock)
                {
                    if (!_queue.TryDequeue(out item))
                    {
                        _wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        wait = _wake.Task;
                    }
                }

                if (wait is not null)
                {
                    await wait.WaitAsync(Stopping).ConfigureAwait(false);
                    continue;
                }

                JudgeIfChanged();
                if (Failure is not null)
                {
                    return;
                }

                var write = item.Message is not null && item.Watch is not { State: WatchState.Cancelled };
                if (write)
                {
                    await _responses.WriteAsync(item.Message!, Stopping).ConfigureAwait(false);
                }

                Written(item.Bytes);
            }
        }
        catch (Exception e) when (Stopping.IsCancellationRequested)
        {
            _ = e;
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    private void Written(int bytes)
    {
        List<ClientWatch>? rejoining = null;
        lock (_lock)
        {
            _queuedBytes -= bytes;
            _hub.Budget.Release(bytes);
            WakeSpace();
            if (_queuedBytes == 0 && _private.Count > 0)
            {
                // The client caught up: watches on their own upstream watch may fit back into their feed's history
                // now. Only those are looked at: a stream of 10,000 watches with one private pays for one per write.
                rejoining = [.. _private];
                _hub.CheckedForRejoin(rejoining.Count);
            }
        }

        foreach (var watch in rejoining ?? [])
        {
            TryRejoin(watch, watch.PrivateId);
        }
    }

    /// <summary>Work that writes to etcd on the session's own upstream stream, in order, off the feeds' locks.</summary>
    private async Task ControlAsync()
    {
        try
        {
            await foreach (var work in _control.Reader.ReadAllAsync(Stopping).ConfigureAwait(false))
            {
                await work().ConfigureAwait(false);
            }
        }
        catch (Exception e) when (Stopping.IsCancellationRequested)
        {
            _ = e;
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    private void Control(Func<Task> work) => _control.Writer.TryWrite(work);

    private async Task JudgeOnChangesAsync()
    {
        try
        {
            while (true)
            {
                await _open.WaitForChangeAsync(Stopping).ConfigureAwait(false);

                // The writer judges before its next write; an empty queue gets a message of nothing to wake it.
                lock (_lock)
                {
                    Push(new Outbound(null, null, 0));
                }
            }
        }
        catch (Exception e) when (Stopping.IsCancellationRequested)
        {
            _ = e;
        }
    }

    /// <summary>Judges the stream and its watches again when the policy or trust changed since they last were (compared by reference).</summary>
    private void JudgeIfChanged()
    {
        var current = _scope.CurrentCaller();
        if (ReferenceEquals(current.Policy, _judged.Policy) && ReferenceEquals(current.Trust, _judged.Trust))
        {
            return;
        }

        List<ClientWatch> revoked = [];
        lock (_judging)
        {
            if (ReferenceEquals(current.Policy, _judged.Policy) && ReferenceEquals(current.Trust, _judged.Trust))
            {
                return;
            }

            _judged = current;
            if (_scope.AuthorizeStreamAgain(current, null) is { } refused)
            {
                Fail(refused);
                return;
            }

            ClientWatch[] all;
            lock (_lock)
            {
                all = [.. _watches.Values];
            }

            foreach (var watch in all)
            {
                if (_scope.AuthorizeWatch(current, watch.Range) is { } denial)
                {
                    lock (_lock)
                    {
                        if (watch.State == WatchState.Cancelled)
                        {
                            continue;
                        }

                        Enqueue(Refused(watch.Id, created: false, StreamJudge<IMessage>.CancelReason(denial)), null);
                        Forget(watch);
                    }

                    revoked.Add(watch);
                }
            }
        }

        foreach (var watch in revoked)
        {
            Control(() => LeaveFeedAsync(watch));
        }
    }

    private static WatchResponse Refused(long watchId, bool created, string reason) => new()
    {
        Header = new ResponseHeader(),
        WatchId = watchId,
        Created = created,
        Canceled = true,
        CancelReason = reason,
    };

    private WatchResponse EtcdRefused(string reason) => new()
    {
        Header = _hub.Header(),
        WatchId = -1,
        Created = true,
        Canceled = true,
        CancelReason = reason,
    };
}
