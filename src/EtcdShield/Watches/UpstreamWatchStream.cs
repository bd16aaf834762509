using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Watches;

/// <summary>What an upstream watch's responses go to: a shared feed, or one client watch served on its own.</summary>
internal interface IUpstreamWatcher
{
    /// <summary>One response, reassembled from its fragments and its values opened. Awaited: a private watch waits here for its client's queue, which holds etcd back.</summary>
    ValueTask OnResponseAsync(WatchResponse response);

    /// <summary>The stream failed, or one of this watch's responses could not be opened: the watch is gone.</summary>
    void OnFailed(Exception failure);
}

/// <summary>
/// One Watch stream to etcd owned by the proxy, carrying many upstream watches under ids the proxy chooses (etcd
/// 3.4 takes <c>watch_id</c> in a create). Each response is reassembled from its fragments, opened once by the
/// Watch route's rewriter and handed to its watcher; progress answers (<c>watch_id</c> -1) go to whoever asked,
/// with at most one progress request in flight. Writes to etcd take turns.
/// </summary>
internal sealed class UpstreamWatchStream : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<IMessage, IMessage> _call;
    private readonly IStreamRewriter? _rewriter;
    private readonly CancellationTokenSource _stop;
    private readonly SemaphoreSlim _writeTurn = new(1, 1);
    private readonly object _lock = new();
    private readonly Dictionary<long, IUpstreamWatcher> _watchers = [];
    private readonly Dictionary<long, WatchResponse> _fragments = [];
    private List<Action<ResponseHeader>>? _progressInFlight;
    private List<Action<ResponseHeader>>? _progressWaiting;
    private long _nextId;
    private bool _ended;
    private Exception? _writeFailure;

    public UpstreamWatchStream(CallInvoker upstream, RelayedMethod watch, CallOptions options, IStreamRewriter? rewriter)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken);
        _call = upstream.AsyncDuplexStreamingCall(watch.Method, null, options.WithCancellationToken(_stop.Token));
        _rewriter = rewriter;
        Reading = Task.Run(ReadAsync);
    }

    /// <summary>Completes when the stream has ended and every watcher has been told.</summary>
    public Task Reading { get; }

    /// <summary>What ended the stream, once it has.</summary>
    public Exception? Failure { get; private set; }

    public bool Ended
    {
        get
        {
            lock (_lock)
            {
                return _ended;
            }
        }
    }

    /// <summary>Whether a progress request is waiting for its answer (the stream must stay open for it).</summary>
    public bool Busy
    {
        get
        {
            lock (_lock)
            {
                return _progressInFlight is not null;
            }
        }
    }

    /// <summary>Whether the proxy closed the stream itself, having no watch left on it.</summary>
    public bool Released { get; private set; }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _watchers.Count;
            }
        }
    }

    /// <summary>Registers a watcher under a new id, before its create is sent (<see cref="CreateAsync"/>); false when the stream has ended.</summary>
    public bool TryAdd(IUpstreamWatcher watcher, out long id)
    {
        lock (_lock)
        {
            if (_ended)
            {
                id = 0;
                return false;
            }

            id = ++_nextId;
            _watchers[id] = watcher;
            return true;
        }
    }

    /// <summary>Sends the create of the watch registered as <paramref name="id"/>.</summary>
    public Task CreateAsync(long id, WatchCreateRequest create)
    {
        create.WatchId = id;
        return WriteAsync(new WatchRequest { CreateRequest = create });
    }

    /// <summary>Cancels a watch in etcd; its later responses, already on their way, are dropped.</summary>
    public Task CancelAsync(long id)
    {
        lock (_lock)
        {
            if (!_watchers.Remove(id) || _ended)
            {
                return Task.CompletedTask;
            }

            _fragments.Remove(id);
        }

        return WriteAsync(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = id } });
    }

    /// <summary>
    /// Asks etcd how far the stream is; <paramref name="answered"/> gets the answer's header, on the reader, after
    /// every response etcd sent before it was handed on. Requests coalesce: one in flight, the rest wait for the next.
    /// </summary>
    public Task RequestProgressAsync(Action<ResponseHeader> answered)
    {
        lock (_lock)
        {
            if (_ended)
            {
                return Task.CompletedTask;
            }

            if (_progressInFlight is not null)
            {
                (_progressWaiting ??= []).Add(answered);
                return Task.CompletedTask;
            }

            _progressInFlight = [answered];
        }

        return WriteAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() });
    }

    public async ValueTask DisposeAsync()
    {
        Released = true;
        await EndAsync().ConfigureAwait(false);
        try
        {
            await Reading.ConfigureAwait(false);
        }
        finally
        {
            _call.Dispose();
            _stop.Dispose();
        }
    }

    /// <summary>How long the reader has, after a write was refused, to see the call end by itself before the proxy ends it.</summary>
    internal static readonly TimeSpan WriteFailureGrace = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Sends one request. A write that fails means the stream is broken or ending: the reader then ends too and tells
    /// every watcher, so the failure is not the writer's to report.
    /// </summary>
    private async Task WriteAsync(WatchRequest request)
    {
        try
        {
            await _writeTurn.WaitAsync(_stop.Token).ConfigureAwait(false);
            try
            {
                await _call.RequestStream.WriteAsync(request, _stop.Token).ConfigureAwait(false);
            }
            finally
            {
                _writeTurn.Release();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException or ObjectDisposedException or IOException)
        {
            if (!_stop.IsCancellationRequested)
            {
                _ = EndAfterRefusedWriteAsync(e);
            }
        }
    }

    /// <summary>
    /// A refused write almost always means etcd ended the call (<c>hasleader</c> and no leader) or the connection
    /// broke, and the reader is about to see that with etcd's own status. Cancelling at once would race those
    /// trailers and tell every watcher <c>Cancelled</c> instead of what etcd said, so the reader gets a grace first;
    /// only a call that stays open after refusing a write is ended by the proxy.
    /// </summary>
    private async Task EndAfterRefusedWriteAsync(Exception refused)
    {
        lock (_lock)
        {
            // The first refused write waits for the reader; the writes refused after it have nothing to add.
            if (_writeFailure is not null)
            {
                return;
            }

            _writeFailure = refused;
        }

        try
        {
            await Reading.WaitAsync(WriteFailureGrace).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            await EndAsync().ConfigureAwait(false);
        }
    }

    private async Task EndAsync()
    {
        try
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // Already disposed: the stream is over.
        }
    }

    private async Task ReadAsync()
    {
        Exception failure;
        try
        {
            while (await _call.ResponseStream.MoveNext(_stop.Token).ConfigureAwait(false))
            {
                await DispatchAsync((WatchResponse)_call.ResponseStream.Current).ConfigureAwait(false);
            }

            failure = new RpcException(new Status(StatusCode.Unavailable, "etcdshield: etcd ended the watch stream"));
        }
        catch (Exception e)
        {
            failure = StatusFromEtcd() ?? RefusedWriteStatus() ?? e;
        }

        IUpstreamWatcher[] watchers;
        lock (_lock)
        {
            _ended = true;
            Failure = failure;
            watchers = [.. _watchers.Values];
            _watchers.Clear();
            _fragments.Clear();
            _progressInFlight = null;
            _progressWaiting = null;
        }

        foreach (var watcher in watchers)
        {
            watcher.OnFailed(failure);
        }
    }

    /// <summary>
    /// The status etcd ended the call with, if it did before the proxy cancelled it. A write that finds the call over
    /// cancels the stream, which can reach the reader before etcd's trailers do; the watchers must still be told what
    /// etcd said (<c>Unavailable: etcdserver: no leader</c>), not that the proxy gave up.
    /// </summary>
    private RpcException? StatusFromEtcd()
    {
        try
        {
            var status = _call.GetStatus();
            return status.StatusCode is StatusCode.OK or StatusCode.Cancelled ? null : new RpcException(status);
        }
        catch (InvalidOperationException)
        {
            // The call has not finished: what the reader caught is the answer.
            return null;
        }
    }

    /// <summary>The status a refused write carried, when it says more than that the call was cancelled.</summary>
    private RpcException? RefusedWriteStatus()
    {
        lock (_lock)
        {
            return _writeFailure is RpcException { StatusCode: not (StatusCode.OK or StatusCode.Cancelled) } refused ? refused : null;
        }
    }

    private async Task DispatchAsync(WatchResponse response)
    {
        if (response.WatchId == -1 && !response.Created && !response.Canceled)
        {
            AnswerProgress(response.Header ?? new ResponseHeader());
            return;
        }

        IUpstreamWatcher? watcher;
        lock (_lock)
        {
            if (!_watchers.TryGetValue(response.WatchId, out watcher))
            {
                return;
            }

            if (!Reassembled(ref response))
            {
                return;
            }

            if (response.Canceled)
            {
                _watchers.Remove(response.WatchId);
            }
        }

        if (_rewriter is not null && response.Events.Count > 0)
        {
            try
            {
                response = (WatchResponse)await _rewriter.RewriteResponseAsync(response, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (!_stop.IsCancellationRequested)
            {
                // A value that cannot be opened ends this watch's clients with it (DATA_LOSS); the stream's other watches go on.
                _ = CancelAsync(response.WatchId);
                watcher.OnFailed(e);
                return;
            }
        }

        await watcher.OnResponseAsync(response).ConfigureAwait(false);
    }

    /// <summary>Holds a fragment until its last one arrives; true when <paramref name="response"/> is whole (the fragments joined).</summary>
    private bool Reassembled(ref WatchResponse response)
    {
        var id = response.WatchId;
        if (_fragments.Remove(id, out var earlier))
        {
            earlier.Events.AddRange(response.Events);
            earlier.Fragment = response.Fragment;
            response = earlier;
        }

        if (response.Fragment)
        {
            _fragments[id] = response;
            return false;
        }

        return true;
    }

    private void AnswerProgress(ResponseHeader header)
    {
        List<Action<ResponseHeader>>? answered;
        var askAgain = false;
        lock (_lock)
        {
            answered = _progressInFlight;
            _progressInFlight = _progressWaiting;
            _progressWaiting = null;
            askAgain = _progressInFlight is not null;
        }

        foreach (var answer in answered ?? [])
        {
            answer(header);
        }

        if (askAgain)
        {
            _ = WriteAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() });
        }
    }
}
