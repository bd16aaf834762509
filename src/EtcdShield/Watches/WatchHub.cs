using System.Diagnostics.Metrics;
using EtcdShield.Configuration;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using EtcdShield.Streams;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Watches;

/// <summary>
/// Watch sharing (<c>--watch-sharing</c>): the feeds (one upstream watch per distinct range, prev_kv and
/// metadata), the proxy's upstream Watch streams that carry them (one per distinct metadata, for as long as it
/// carries a feed), the global byte budget, and one <see cref="WatchSession"/> per client Watch stream.
/// </summary>
internal sealed partial class WatchHub : IWatchStreams, IAsyncDisposable
{
    /// <summary>Responses a feed's history keeps at most, whatever their size.</summary>
    public const int FeedHistoryResponses = 1024;

    private readonly object _lock = new();
    private readonly CallInvoker _upstream;
    private readonly IStreamRewriter? _rewriter;
    private readonly RelayedMethod _watch = RelayedMethod.All().Single(m => m.IsWatch);
    private readonly CancellationToken _stopping;
    private readonly Dictionary<FeedKey, Feed> _feeds = [];
    private readonly Dictionary<string, UpstreamWatchStream> _streams = new(StringComparer.Ordinal);

    // etcd's latest header has a lock of its own, taken last and around nothing else. Feeds record it under their
    // lock and sessions read it under theirs, and the hub's lock comes before both (a create holds it while it finds
    // the feed and adds its watch, taking the feed's lock and then the session's): taking the hub's lock there
    // deadlocked a feed's reader against a create of the same range.
    private readonly object _headerLock = new();
    private ResponseHeader _header = new();
    private long _rejoinChecks;

    public WatchHub(CallInvoker upstream, IStreamRewriter? rewriter, ShieldOptions options, IMeterFactory meters, TimeProvider time, ILogger<WatchHub> logger, CancellationToken stopping)
    {
        _upstream = upstream;
        _rewriter = rewriter;
        _stopping = stopping;
        Budget = new WatchBudget(options.WatchBufferBytes);
        Metrics = new WatchMetrics(meters, () => Budget.Used);
        Time = time;
        Logger = logger;
        QueueBytes = options.WatchQueueBytes;
        FeedHistoryBytes = options.WatchQueueBytes;
        // etcd splits at its --max-request-bytes plus the 512 KiB of gRPC overhead it allows (v3rpc grpcOverheadBytes).
        MaxRequestBytes = ShieldOptions.MaxReceiveMessageBytes(options.MaxRequestBytes);
        ProgressInterval = options.WatchProgressNotifyInterval;
    }

    public WatchBudget Budget { get; }

    public WatchMetrics Metrics { get; }

    public TimeProvider Time { get; }

    public ILogger Logger { get; }

    public int QueueBytes { get; }

    /// <summary>Bytes one feed's history keeps at most (as much as one stream's queue: a watch demoted for a full queue can come back from it).</summary>
    public long FeedHistoryBytes { get; }

    /// <summary>Where a watch that asked for fragments has its responses split: etcd's --max-request-bytes and 512 KiB, as etcd splits.</summary>
    public int MaxRequestBytes { get; }

    public TimeSpan ProgressInterval { get; }

    /// <summary>For tests: watches the sessions have looked at to rejoin when their queue drained, to show that work follows the private ones.</summary>
    internal long RejoinChecks => Interlocked.Read(ref _rejoinChecks);

    public void CheckedForRejoin(int watches) => Interlocked.Add(ref _rejoinChecks, watches);

    /// <summary>
    /// For tests: called in a rejoin under the feed's lock, once the replay is made from the watch's next revision
    /// (the second argument) and before the session is given it. A test holds the rejoin here to let the watch's own
    /// upstream reader queue a response in between, the interleaving the session's check of the revision guards.
    /// </summary>
    internal Action<ClientWatch, long>? ReplayMade { get; set; }

    public IWatchSession Open(CallScope scope, OpenStream open, IAsyncStreamReader<IMessage> requests, IServerStreamWriter<IMessage> responses) =>
        new WatchSession(this, scope, open, requests, responses);

    /// <summary>
    /// What of a client's metadata a shared watch carries to etcd: only what changes etcd's answers on a watch stream,
    /// clientv3's <c>hasleader</c> (the stream ends when the member has no leader) and an auth <c>token</c> or
    /// <c>authorization</c>. Anything else (a W3C <c>traceparent</c>, a request id, custom keys) differs per call and
    /// changes nothing etcd sends, so keying feeds on it would give every traced client feeds of its own.
    /// </summary>
    public static Metadata? SharedHeaders(Metadata? headers)
    {
        Metadata? shared = null;
        foreach (var entry in headers ?? [])
        {
            if (entry.Key is "hasleader" or "token" or "authorization")
            {
                (shared ??= []).Add(entry);
            }
        }

        return shared;
    }

    /// <summary>The metadata a stream sends to etcd, as a key: watches share upstream streams and feeds only with the same (hasleader, an auth token).</summary>
    public static string KeyOf(Metadata? headers)
    {
        if (headers is null || headers.Count == 0)
        {
            return "";
        }

        var entries = new List<string>(headers.Count);
        foreach (var entry in headers)
        {
            entries.Add(entry.Key + "=" + (entry.IsBinary ? Convert.ToBase64String(entry.ValueBytes) : entry.Value));
        }

        entries.Sort(StringComparer.Ordinal);
        return string.Join('\n', entries);
    }

    /// <summary>etcd's latest header the hub has seen, at its revision or at <paramref name="revision"/>.</summary>
    public ResponseHeader Header(long? revision = null)
    {
        lock (_headerLock)
        {
            return revision is { } at ? new ResponseHeader(_header) { Revision = at } : _header.Clone();
        }
    }

    /// <summary>Records a header etcd sent on a feed (under the feed's lock).</summary>
    public void Saw(ResponseHeader header)
    {
        lock (_headerLock)
        {
            if (header.Revision >= _header.Revision)
            {
                _header = header;
            }
        }
    }

    /// <summary>Adds a client watch to the feed of its range, opening the feed (and its upstream stream) when there is none.</summary>
    public async Task JoinAsync(ClientWatch watch, FeedKey key, Metadata? headers)
    {
        while (true)
        {
            Feed feed;
            var created = false;
            lock (_lock)
            {
                if (!_feeds.TryGetValue(key, out feed!) || feed.Closed)
                {
                    var stream = StreamForLocked(key.Headers, headers);
                    feed = new Feed(this, key, stream);
                    if (!stream.TryAdd(feed, out var id))
                    {
                        _streams.Remove(key.Headers);
                        continue;
                    }

                    feed.UpstreamId = id;
                    _feeds[key] = feed;
                    created = true;
                    Metrics.FeedOpened();
                }

                if (!feed.Add(watch))
                {
                    _feeds.Remove(key);
                    continue;
                }
            }

            if (created)
            {
                await feed.Stream.CreateAsync(feed.UpstreamId, new WatchCreateRequest
                {
                    Key = key.Key,
                    RangeEnd = key.RangeEnd.IsEmpty && watch.RangeEnd.Length == 1 ? watch.RangeEnd : key.RangeEnd,
                    PrevKv = key.PrevKv,
                    ProgressNotify = true,
                    Fragment = true,
                }).ConfigureAwait(false);
            }

            return;
        }
    }

    /// <summary>A feed no watch belongs to any more is closed and cancelled in etcd.</summary>
    public async Task ReleaseAsync(Feed feed)
    {
        var cancel = false;
        lock (_lock)
        {
            if (feed.CloseIfUnused())
            {
                cancel = true;
                Remove(feed);
            }
        }

        if (cancel)
        {
            await feed.Stream.CancelAsync(feed.UpstreamId).ConfigureAwait(false);
            await ReleaseStreamAsync(feed.Stream).ConfigureAwait(false);
        }
    }

    /// <summary>An upstream stream that carries no watch is closed, so streams are bounded by the watches (and metadata) in use.</summary>
    public async Task ReleaseStreamAsync(UpstreamWatchStream stream)
    {
        lock (_lock)
        {
            if (stream.Count > 0 || stream.Busy)
            {
                return;
            }

            foreach (var (key, current) in _streams)
            {
                if (current == stream)
                {
                    _streams.Remove(key);
                    break;
                }
            }
        }

        await stream.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>A feed that etcd cancelled, or whose stream failed: later watches of its range get a new one.</summary>
    public void Forget(Feed feed)
    {
        lock (_lock)
        {
            Remove(feed);
        }
    }

    /// <summary>The upstream stream for <paramref name="headersKey"/>, opened when there is none.</summary>
    public UpstreamWatchStream StreamFor(string headersKey, Metadata? headers)
    {
        lock (_lock)
        {
            return StreamForLocked(headersKey, headers);
        }
    }

    /// <summary>A stream of a session's own (its watches that are not shared), under the client's call: its metadata, deadline and cancellation.</summary>
    public UpstreamWatchStream OpenStream(CallOptions options) => new(_upstream, _watch, options, _rewriter);

    public async ValueTask DisposeAsync()
    {
        UpstreamWatchStream[] streams;
        lock (_lock)
        {
            streams = [.. _streams.Values];
            _streams.Clear();
        }

        foreach (var stream in streams)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void Remove(Feed feed)
    {
        if (_feeds.TryGetValue(feed.Key, out var current) && current == feed)
        {
            _feeds.Remove(feed.Key);
            Metrics.FeedClosed();
        }
    }

    private UpstreamWatchStream StreamForLocked(string headersKey, Metadata? headers)
    {
        if (_streams.TryGetValue(headersKey, out var stream) && !stream.Ended)
        {
            return stream;
        }

        stream = new UpstreamWatchStream(_upstream, _watch, new CallOptions(headers: headers, cancellationToken: _stopping), _rewriter);
        _streams[headersKey] = stream;
        _ = LogEndAsync(stream);
        return stream;
    }

    private async Task LogEndAsync(UpstreamWatchStream stream)
    {
        await stream.Reading.ConfigureAwait(false);
        if (stream.Released)
        {
            return;
        }

        if (!_stopping.IsCancellationRequested)
        {
            Log.UpstreamWatchStreamEnded(Logger, stream.Failure is RpcException rpc ? rpc.StatusCode.ToString() : stream.Failure?.GetType().Name ?? "none");
        }

        await ReleaseStreamAsync(stream).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.UpstreamWatchStreamEnded, EventName = nameof(EventIds.UpstreamWatchStreamEnded), Level = LogLevel.Warning, Message = "A shared upstream watch stream ended ({Code}); the client streams with a watch on it were ended with its status")]
        public static partial void UpstreamWatchStreamEnded(ILogger logger, string code);
    }
}
