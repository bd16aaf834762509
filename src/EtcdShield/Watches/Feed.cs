using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.Watches;

/// <summary>Which client watches can share one upstream watch: the same range as etcd normalizes it, prev_kv, and the metadata sent to etcd.</summary>
internal readonly record struct FeedKey(ByteString Key, ByteString RangeEnd, bool PrevKv, string Headers);

/// <summary>
/// One shared upstream watch and the client watches it serves. Opened at the current revision (start 0), with
/// progress_notify and fragment; every response is opened once and fanned out to the subscribers as encoded
/// frames, never waiting: a subscriber whose stream's queue is full is demoted to its own upstream watch. The feed
/// keeps its position (every event of its range up to that revision received) and a short history of its recent
/// responses (bounded in bytes, charged to the global budget) from which a watch starting a little in the past,
/// or coming back from its own upstream watch, joins without a gap or a duplicate. Everything is done under the
/// feed's lock, which is never held across an await; the lock order is hub, then feed, then session, so nothing
/// done under a feed's lock takes the hub's (etcd's latest header, which feeds record, has a lock of its own).
/// </summary>
internal sealed class Feed : IUpstreamWatcher
{
    private readonly object _lock = new();
    private readonly WatchHub _hub;
    private readonly List<ClientWatch> _subscribers = [];
    private readonly Queue<FeedResponse> _history = new();
    private readonly List<ClientWatch> _demoted = [];

    // Watches added before etcd confirmed the upstream watch; placed when it does. Only ever a few at once.
    private readonly List<ClientWatch> _pending = [];

    // Head watches (start 0) joining a feed already open, waiting for etcd's current revision (a progress answer on
    // the feed's stream): one per create in flight, so bounded by the sessions' watch limits.
    private readonly List<ClientWatch> _heads = [];
    private long _historyBytes;
    private int _members;
    private bool _created;
    private bool _closed;
    private ResponseHeader _header = new();

    public Feed(WatchHub hub, FeedKey key, UpstreamWatchStream stream)
    {
        _hub = hub;
        Key = key;
        Stream = stream;
    }

    public FeedKey Key { get; }

    public UpstreamWatchStream Stream { get; }

    public long UpstreamId { get; set; }

    /// <summary>Every event of the range up to this revision has been received.</summary>
    public long Position { get; private set; }

    /// <summary>The history holds every response above this revision.</summary>
    public long HistoryFloor { get; private set; }

    /// <summary>Watches that belong to this feed (subscribed, or on their own upstream watch meaning to come back); the hub closes a feed with none.</summary>
    public int Members
    {
        get
        {
            lock (_lock)
            {
                return _members;
            }
        }
    }

    public bool Closed
    {
        get
        {
            lock (_lock)
            {
                return _closed;
            }
        }
    }

    /// <summary>Closes the feed if no watch belongs to it; under the hub's lock. True when it was closed now.</summary>
    public bool CloseIfUnused()
    {
        lock (_lock)
        {
            if (_members > 0 || _closed)
            {
                return false;
            }

            _closed = true;
            TrimHistory(0);
            return true;
        }
    }

    /// <summary>
    /// A new client watch: subscribed at once when it starts at the feed's position or later (the created answer
    /// says the position), kept waiting for the upstream created answer when there is none yet, or, when it starts
    /// in the past, made a member that the session serves on its own upstream watch first. False when the feed closed.
    /// </summary>
    public bool Add(ClientWatch watch)
    {
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }

            _members++;
            watch.Feed = this;
            if (!_created)
            {
                _pending.Add(watch);
                return true;
            }

            if (watch.StartRevision != 0)
            {
                Place(watch);
                return true;
            }

            // etcd starts a head watch after its current revision as of the create, which may be above the feed's
            // position (a put acknowledged whose event is still on its way): the feed's stream is asked, and the
            // watch starts after the answer, from the history and the live events.
            _heads.Add(watch);
        }

        _ = Stream.RequestProgressAsync(header => HeadAnswered(watch, header));
        return true;
    }

    /// <summary>
    /// etcd's current revision R for a head watch, on the feed's reader: the watch is created at R and subscribed
    /// with every response above R the feed already has replayed first; responses up to R that come later are
    /// skipped by its next revision. No gap, no event etcd would not send it.
    /// </summary>
    private void HeadAnswered(ClientWatch watch, ResponseHeader header)
    {
        lock (_lock)
        {
            if (!_heads.Remove(watch) || watch.Feed != this || _closed)
            {
                return;
            }

            var revision = header.Revision;
            var next = revision + 1;
            if (next <= HistoryFloor)
            {
                // The history no longer reaches back to R (never for a live feed in practice): etcd serves it from R + 1.
                watch.Session.Created(watch, header, next);
                watch.Session.Demote(watch);
                return;
            }

            var replay = new List<Outbound>();
            var bytes = 0;
            foreach (var response in _history)
            {
                bytes += watch.Session.FramesFor(watch, response, next, replay);
            }

            Subscribe(watch);
            if (!watch.Session.CreatedWith(watch, header, Math.Max(next, Position + 1), next, replay, bytes))
            {
                Unsubscribe(watch);
                watch.Session.Demote(watch);
            }
        }
    }

    /// <summary>A watch leaves the feed (cancelled, or its stream ended); true when no watch belongs to it any more.</summary>
    public bool Remove(ClientWatch watch)
    {
        lock (_lock)
        {
            if (watch.Feed != this)
            {
                return false;
            }

            Unsubscribe(watch);
            _pending.Remove(watch);
            _heads.Remove(watch);
            watch.Feed = null;
            _members--;
            return _members == 0;
        }
    }

    /// <summary>
    /// A watch on its own upstream watch that has been given everything below <see cref="ClientWatch.Next"/> joins:
    /// when the history holds every response from there on and the replay fits its queue, the replay is queued and
    /// the watch subscribed in one step under the lock, so the next response fanned out follows the replay.
    /// </summary>
    public bool TryRejoin(ClientWatch watch, long privateId)
    {
        lock (_lock)
        {
            if (_closed || !_created || watch.Feed != this || watch.OnFeed)
            {
                return false;
            }

            var next = watch.Session.NextOf(watch);
            if (next <= HistoryFloor)
            {
                return false;
            }

            var replay = new List<Outbound>();
            var bytes = 0;
            foreach (var response in _history)
            {
                bytes += watch.Session.FramesFor(watch, response, next, replay);
            }

            _hub.ReplayMade?.Invoke(watch, next);
            if (!watch.Session.TryRejoin(watch, privateId, next, replay, bytes, Position + 1))
            {
                return false;
            }

            Subscribe(watch);
            return true;
        }
    }

    public ValueTask OnResponseAsync(WatchResponse response)
    {
        var cancelled = false;
        lock (_lock)
        {
            if (_closed)
            {
                return ValueTask.CompletedTask;
            }

            if (response.Header is { } header)
            {
                _header = header;
                _hub.Saw(header);
            }

            if (response.Created)
            {
                Opened(response.Header?.Revision ?? 0);
            }
            else if (response.Canceled)
            {
                // etcd cancelled the shared watch itself (compaction, or a failure of its own): each subscriber goes
                // on from its next revision on its own upstream watch, where etcd judges it as it would have.
                Cancelled();
                cancelled = true;
            }
            else
            {
                Deliver(new FeedResponse(response));
            }
        }

        if (cancelled)
        {
            _hub.Forget(this);
        }

        return ValueTask.CompletedTask;
    }

    public void OnFailed(Exception failure)
    {
        ClientWatch[] members;
        lock (_lock)
        {
            _closed = true;
            members = [.. _subscribers, .. _pending, .. _heads];
            _pending.Clear();
            _heads.Clear();
            TrimHistory(0);
        }

        foreach (var watch in members)
        {
            watch.Session.Fail(failure);
        }

        _hub.Forget(this);
    }

    /// <summary>etcd's last header (cluster, member, term) at <paramref name="revision"/>.</summary>
    public ResponseHeader HeaderAt(long revision) => new(_header) { Revision = revision };

    private void Opened(long revision)
    {
        _created = true;
        Position = revision;
        HistoryFloor = revision;
        foreach (var watch in _pending)
        {
            Place(watch);
        }

        _pending.Clear();
    }

    /// <summary>Subscribes a watch starting at or after the position (created at the position), or sends one starting earlier to its own upstream watch.</summary>
    private void Place(ClientWatch watch)
    {
        var start = watch.StartRevision;
        if (start == 0 || start > Position)
        {
            Subscribe(watch);
            watch.Session.Created(watch, HeaderAt(Position), start == 0 ? Position + 1 : start);
            return;
        }

        watch.Session.ServeOwn(watch, start);
    }

    private void Deliver(FeedResponse response)
    {
        Position = Math.Max(Position, response.Revision);
        if (!response.HasEvents)
        {
            // etcd's progress notification: every subscriber has had everything up to it.
            foreach (var watch in _subscribers)
            {
                watch.Session.Advance(watch, response.Response.Header);
            }

            return;
        }

        Remember(response);
        for (var i = 0; i < _subscribers.Count;)
        {
            var watch = _subscribers[i];
            if (watch.Session.Offer(watch, response))
            {
                i++;
                continue;
            }

            Unsubscribe(watch);
            _demoted.Add(watch);
        }

        foreach (var watch in _demoted)
        {
            watch.Session.Demote(watch);
        }

        _demoted.Clear();
    }

    private void Cancelled()
    {
        _created = false;
        var subscribers = _subscribers.ToArray();
        foreach (var watch in subscribers)
        {
            Unsubscribe(watch);
            watch.Session.Demote(watch);
        }

        foreach (var watch in _pending)
        {
            watch.Session.ServeOwn(watch, watch.StartRevision);
        }

        _pending.Clear();

        // Head watches not yet created: etcd creates them itself at its current revision.
        foreach (var watch in _heads)
        {
            watch.Session.ServeOwn(watch, 0);
        }

        _heads.Clear();

        _closed = true;
        TrimHistory(0);
    }

    private void Remember(FeedResponse response)
    {
        _history.Enqueue(response);
        _historyBytes += response.Size;
        if (!_hub.Budget.TryCharge(response.Size))
        {
            // The budget is spent: this feed keeps no history (its laggards catch up on their own upstream watches),
            // or many feeds of big values would each hold up to a queue's worth past --watch-buffer-bytes.
            _hub.Budget.Force(response.Size);
            TrimHistory(0);
        }

        TrimHistory(_hub.FeedHistoryBytes);
    }

    private void TrimHistory(long keep)
    {
        while (_history.Count > 0 && (_historyBytes > keep || _history.Count > WatchHub.FeedHistoryResponses))
        {
            var oldest = _history.Dequeue();
            _historyBytes -= oldest.Size;
            _hub.Budget.Release(oldest.Size);
            HistoryFloor = oldest.Revision;
        }
    }

    private void Subscribe(ClientWatch watch)
    {
        watch.FeedIndex = _subscribers.Count;
        watch.OnFeed = true;
        _subscribers.Add(watch);
        _hub.Metrics.Subscribed();
    }

    /// <summary>Constant time: the last subscriber takes the leaving one's place.</summary>
    private void Unsubscribe(ClientWatch watch)
    {
        if (!watch.OnFeed)
        {
            return;
        }

        var last = _subscribers[^1];
        _subscribers[watch.FeedIndex] = last;
        last.FeedIndex = watch.FeedIndex;
        _subscribers.RemoveAt(_subscribers.Count - 1);
        watch.OnFeed = false;
        _hub.Metrics.Unsubscribed();
    }
}
