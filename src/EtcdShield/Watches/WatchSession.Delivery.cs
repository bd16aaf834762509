using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;

namespace EtcdShield.Watches;

/// <summary>How responses reach the session: from feeds (under the feed's lock), from its own upstream watches, progress answers and ticks.</summary>
internal sealed partial class WatchSession
{
    private readonly List<Outbound> _frames = [];

    /// <summary>
    /// A feed's response for one of its subscribers, under the feed's lock: queued as a frame sharing the feed's
    /// body, unless the queue has no room for it: false, and the feed demotes the watch. Never waits.
    /// </summary>
    public bool Offer(ClientWatch watch, FeedResponse response)
    {
        lock (_lock)
        {
            if (watch.State != WatchState.Shared || response.LastEventRevision < watch.Next)
            {
                return true;
            }

            _frames.Clear();
            var bytes = FramesFor(watch, response, watch.Next, _frames);
            if (bytes > 0)
            {
                if (!TryReserve(bytes))
                {
                    return false;
                }

                foreach (var frame in _frames)
                {
                    Push(frame);
                }

                watch.EventsSinceTick = true;
            }

            watch.Next = response.Revision + 1;
            return true;
        }
    }

    /// <summary>
    /// The frames of <paramref name="response"/> for <paramref name="watch"/> from revision <paramref name="from"/>:
    /// the shared body for its filters when it takes the whole response, its own otherwise (it starts inside the
    /// response, or asked for fragments of a response that needs them). Returns their bytes (0: nothing for it).
    /// </summary>
    public int FramesFor(ClientWatch watch, FeedResponse response, long from, List<Outbound> into)
    {
        if (!response.HasEvents || response.LastEventRevision < from)
        {
            return 0;
        }

        if (response.FirstEventRevision >= from)
        {
            if (response.Body(watch.Shape) is not { } body)
            {
                return 0;
            }

            var frame = WatchFrames.Frame(body, watch.Id);
            var size = frame.CalculateSize();
            if (!watch.Fragment || size < _hub.MaxRequestBytes || response.Response.Events.Count < 2)
            {
                into.Add(new Outbound(frame, watch, size));
                return size;
            }
        }

        var events = response.EventsFor(watch.Shape, from);
        return events.Count == 0 ? 0 : WatchFrames.AddOwnFrames(watch, response.Response.Header, events, _hub.MaxRequestBytes, into);
    }

    /// <summary>
    /// etcd's progress notification on a feed (under its lock): the subscriber has had everything up to its
    /// revision, and one that asked for progress_notify is told so when etcd tells its own watches.
    /// </summary>
    public void Advance(ClientWatch watch, ResponseHeader header)
    {
        lock (_lock)
        {
            if (watch.State != WatchState.Shared)
            {
                return;
            }

            watch.Next = Math.Max(watch.Next, header.Revision + 1);
            if (watch.ProgressNotify && _queuedBytes < _hub.QueueBytes)
            {
                Enqueue(new WatchResponse { Header = header, WatchId = watch.Id }, watch);
                watch.EventsSinceTick = false;
            }
        }
    }

    public long NextOf(ClientWatch watch)
    {
        lock (_lock)
        {
            return watch.Next;
        }
    }

    /// <summary>The feed confirms a watch (under its lock): the created answer says the feed's position.</summary>
    public void Created(ClientWatch watch, ResponseHeader header, long next)
    {
        lock (_lock)
        {
            if (watch.State != WatchState.Creating)
            {
                return;
            }

            AnswerCreatedShared(watch, header, next);
        }
    }

    /// <summary>Answers a creating watch's create as shared from <paramref name="next"/>; under the session's lock.</summary>
    private void AnswerCreatedShared(ClientWatch watch, ResponseHeader header, long next)
    {
        watch.State = WatchState.Shared;
        _unshared--;
        watch.Next = next;
        watch.CreatedSent = true;
        watch.Proven = true;
        Enqueue(new WatchResponse { Header = header, WatchId = watch.Id, Created = true }, null);
        watch.MarkAnswered();
    }

    /// <summary>
    /// A head watch joining an open feed is created at etcd's revision as of its create (under the feed's lock,
    /// already subscribed): the created answer, then the feed's responses above that revision it already has.
    /// False when the replay does not fit the queue: the watch is shared from <paramref name="next"/> and the feed
    /// demotes it, so its own upstream watch serves it from there.
    /// </summary>
    public bool CreatedWith(ClientWatch watch, ResponseHeader header, long after, long next, List<Outbound> replay, int bytes)
    {
        lock (_lock)
        {
            if (watch.State != WatchState.Creating)
            {
                return true;
            }

            AnswerCreatedShared(watch, header, next);
            if (bytes > 0 && !TryReserve(bytes))
            {
                return false;
            }

            foreach (var frame in replay)
            {
                Push(frame);
            }

            watch.EventsSinceTick |= bytes > 0;
            watch.Next = after;
            return true;
        }
    }

    /// <summary>A feed's subscriber whose stream's queue is full (under the feed's lock): it goes on from its next revision on its own upstream watch.</summary>
    public void Demote(ClientWatch watch)
    {
        lock (_lock)
        {
            if (watch.State != WatchState.Shared)
            {
                return;
            }

            watch.State = WatchState.Demoting;
            _unshared++;
        }

        _hub.Metrics.Demoted();
        Log.WatchDemoted(_hub.Logger, watch.Id, _hub.QueueBytes);
        Control(() => OpenOwnAsync(watch));
    }

    /// <summary>A new watch starting before the feed's position: etcd serves it from its start on the session's own upstream stream (and judges its compaction) until it can join.</summary>
    public void ServeOwn(ClientWatch watch, long start)
    {
        lock (_lock)
        {
            if (watch.State is WatchState.Cancelled or WatchState.Private or WatchState.Demoting)
            {
                return;
            }

            if (watch.State == WatchState.Shared)
            {
                _unshared++;
            }

            watch.State = WatchState.Demoting;
            watch.Next = start;
        }

        Control(() => OpenOwnAsync(watch));
    }

    /// <summary>
    /// The feed's replay for a watch coming back (under the feed's lock): when the watch still is where the replay
    /// was made for and the replay fits the queue, it is queued, the watch is shared again, and its own upstream
    /// watch is cancelled; responses of it still on their way are dropped. The replay was made from
    /// <paramref name="from"/> outside the session's lock: if its own upstream watch queued more since (the writer's
    /// rejoin racing the reader's), the replay would repeat those events, so it is refused and the reader, which
    /// tries again after every response it queues, rejoins with a fresh one.
    /// </summary>
    public bool TryRejoin(ClientWatch watch, long privateId, long from, List<Outbound> replay, int bytes, long next)
    {
        lock (_lock)
        {
            if (watch.State != WatchState.Private || watch.PrivateId != privateId || privateId == 0 || !watch.Proven || watch.Next != from)
            {
                return false;
            }

            if (bytes > 0 && !TryReserve(bytes))
            {
                return false;
            }

            foreach (var frame in replay)
            {
                Push(frame);
            }

            watch.Next = Math.Max(watch.Next, next);
            watch.State = WatchState.Shared;
            watch.PrivateId = 0;
            _private.Remove(watch);
            _unshared--;
            Control(() => _own!.CancelAsync(privateId));
            TryAnswerProgress();
        }

        _hub.Metrics.Rejoined();
        return true;
    }

    private static void TryRejoin(ClientWatch watch, long privateId)
    {
        if (privateId != 0 && watch.Feed is { } feed)
        {
            feed.TryRejoin(watch, privateId);
        }
    }

    private async Task OpenOwnAsync(ClientWatch watch)
    {
        long next;
        lock (_lock)
        {
            if (watch.State != WatchState.Demoting)
            {
                return;
            }

            next = watch.Next;
        }

        _own ??= _hub.OpenStream(_scope.Call.Options);
        var own = new OwnWatch(this, watch);
        if (!_own.TryAdd(own, out var id))
        {
            Fail(_own.Failure ?? new InvalidOperationException("the session's upstream watch stream has ended"));
            return;
        }

        lock (_lock)
        {
            if (watch.State != WatchState.Demoting)
            {
                return;
            }

            watch.State = WatchState.Private;
            _private.Add(watch);
            watch.PrivateId = id;
            own.Id = id;
        }

        await _own.CreateAsync(id, new WatchCreateRequest
        {
            Key = watch.Key,
            RangeEnd = watch.RangeEnd,
            StartRevision = next,
            PrevKv = watch.PrevKv,
            ProgressNotify = true,
            Fragment = true,
        }).ConfigureAwait(false);
    }

    /// <summary>A response of a watch's own upstream watch; waits for room in the queue, which holds etcd back.</summary>
    private async ValueTask OnOwnResponseAsync(ClientWatch watch, long id, WatchResponse response)
    {
        if (response.Canceled)
        {
            // Compaction, or etcd's own reason: the client hears it as etcd said it, under its own id.
            lock (_lock)
            {
                if (watch.PrivateId != id || watch.State != WatchState.Private)
                {
                    return;
                }

                var told = response.Clone();
                told.WatchId = watch.Id;
                told.Created = !watch.CreatedSent && response.Created;
                watch.PrivateId = 0;
                Enqueue(told, null);
                Forget(watch);
            }

            await LeaveFeedAsync(watch).ConfigureAwait(false);
            return;
        }

        if (response.Created)
        {
            bool demoted;
            lock (_lock)
            {
                if (watch.PrivateId != id || watch.State != WatchState.Private)
                {
                    return;
                }

                demoted = watch.CreatedSent;
                if (!demoted)
                {
                    watch.CreatedSent = true;
                    Enqueue(new WatchResponse { Header = response.Header, WatchId = watch.Id, Created = true }, null);
                    watch.MarkAnswered();
                }
            }

            // A new watch from the past may still be cancelled for compaction, which etcd tells after the created
            // answer: it joins only after a response that shows it was not (Proven). A demoted one goes back at once.
            if (demoted)
            {
                TryRejoin(watch, id);
            }

            return;
        }

        var revision = response.Header?.Revision ?? 0;
        if (response.Events.Count > 0)
        {
            long from;
            lock (_lock)
            {
                from = watch.Next;
            }

            var events = new List<Event>();
            foreach (var change in response.Events)
            {
                if (change.Kv.ModRevision >= from && WatchFrames.Passes(change, watch.Shape))
                {
                    events.Add(change);
                }
            }

            var frames = new List<Outbound>();
            var bytes = events.Count == 0 ? 0 : WatchFrames.AddOwnFrames(watch, response.Header ?? new ResponseHeader(), events, _hub.MaxRequestBytes, frames);
            await WaitForSpaceAsync(bytes, reserve: true).ConfigureAwait(false);
            lock (_lock)
            {
                if (watch.PrivateId != id || watch.State != WatchState.Private)
                {
                    Unreserve(bytes);
                    return;
                }

                foreach (var frame in frames)
                {
                    Push(frame);
                }

                watch.Proven = true;
                watch.EventsSinceTick |= bytes > 0;
                watch.Next = Math.Max(watch.Next, revision + 1);
            }
        }
        else
        {
            lock (_lock)
            {
                if (watch.PrivateId == id)
                {
                    watch.Proven = true;
                    watch.Next = Math.Max(watch.Next, revision + 1);
                    if (watch.ProgressNotify && response.Header is { } header && _queuedBytes < _hub.QueueBytes)
                    {
                        Enqueue(new WatchResponse { Header = header, WatchId = watch.Id }, watch);
                        watch.EventsSinceTick = false;
                    }
                }
            }
        }

        TryRejoin(watch, id);
    }

    /// <summary>
    /// A WatchProgressRequest: answered <c>{header: R, watch_id: -1}</c> only once every watch of the stream has
    /// been given every event up to R. R is etcd's answer on the stream the feeds share, handed over after every
    /// response etcd sent before it, so the answer is queued after them; while a watch is on its own upstream
    /// watch or not yet created, the answer waits. Requests made while one is waiting are answered with it.
    /// </summary>
    private void RequestProgress()
    {
        lock (_lock)
        {
            _progressWanted = true;
            TryAnswerProgress();
        }
    }

    /// <summary>Asks etcd for the revision when an answer is wanted and every watch is shared (under the lock).</summary>
    private void TryAnswerProgress()
    {
        if (!_progressWanted || _progressAsked || _unshared > 0 || _disposed)
        {
            return;
        }

        _progressAsked = true;

        // The stream is found on the control loop, off every lock: this runs under the session's lock, and under a
        // feed's when a watch rejoins, and the hub's lock comes before both.
        Control(() => AskProgressAsync(_hub.StreamFor(HeadersKey, Headers)));
    }

    /// <summary>
    /// etcd 3.4 answers a progress request at once, possibly ahead of events already queued in its send loop; its
    /// answer is passed on only after a second answer, asked for once the first came, so that what etcd had queued
    /// before the first has been delivered (3.5 orders its answer after them itself).
    /// </summary>
    private Task AskProgressAsync(UpstreamWatchStream stream) =>
        stream.RequestProgressAsync(first =>
        {
            var again = stream.RequestProgressAsync(second =>
            {
                ProgressAnswered(first);

                // A stream opened only to ask (no watch on it) is closed again.
                var closing = _hub.ReleaseStreamAsync(stream);
            });
        });

    private void ProgressAnswered(ResponseHeader header)
    {
        lock (_lock)
        {
            _progressAsked = false;
            if (_unshared > 0)
            {
                // A watch left its feed meanwhile; asked again once it is back.
                return;
            }

            _progressWanted = false;
            Enqueue(new WatchResponse { Header = header, WatchId = -1 }, null);
        }
    }

    /// <summary>
    /// The progress_notify tick: each such watch that had no events since the last one is told how far it is, as
    /// etcd tells it: <c>{header: revision, watch_id}</c> with the revision below which it has been given everything.
    /// </summary>
    private void Tick()
    {
        lock (_lock)
        {
            if (_progressWatches == 0 || _disposed)
            {
                return;
            }

            foreach (var watch in _watches.Values)
            {
                // A full queue (a client that does not read) gets no more ticks until it drains, as etcd skips a
                // watcher whose channel is full; the ones left are told at a later tick.
                if (_queuedBytes >= _hub.QueueBytes)
                {
                    return;
                }

                if (!watch.ProgressNotify || watch.State is not (WatchState.Shared or WatchState.Private))
                {
                    continue;
                }

                if (!watch.EventsSinceTick && watch.Next > 0)
                {
                    Enqueue(new WatchResponse { Header = _hub.Header(Math.Min(watch.Next - 1, _hub.Header().Revision)), WatchId = watch.Id }, watch);
                }

                watch.EventsSinceTick = false;
            }
        }
    }

    private sealed class OwnWatch(WatchSession session, ClientWatch watch) : IUpstreamWatcher
    {
        public long Id { get; set; }

        public ValueTask OnResponseAsync(WatchResponse response) => session.OnOwnResponseAsync(watch, Id, response);

        public void OnFailed(Exception failure) => session.Fail(failure);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.WatchDemoted, EventName = nameof(EventIds.WatchDemoted), Level = LogLevel.Debug, Message = "Watch {WatchId} moved to its own upstream watch: its stream's queue passed {QueueBytes} bytes")]
        public static partial void WatchDemoted(ILogger logger, long watchId, int queueBytes);
    }
}
