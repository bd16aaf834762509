using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Tests.Relay;
using Google.Protobuf;

namespace EtcdShield.Tests.Watches;

/// <summary>
/// etcd's watch service over the in-memory etcd's scripted streams, for the watch sharing tests: a little store
/// with revisions, puts, deletes and compaction, and on every Watch stream etcd's answers: created (header at the
/// current revision), a catching-up watch's events in one batch at the current revision, the compacted cancel,
/// cancels, progress answers, and each later revision's events to every watch of its range.
/// </summary>
internal sealed class WatchEtcd
{
    private readonly object _lock = new();
    private readonly InMemoryEtcd _etcd;
    private readonly List<Event> _log = [];
    private readonly Dictionary<string, KeyValue> _kvs = new(StringComparer.Ordinal);
    private readonly List<Served> _streams = [];
    private readonly List<(Func<WatchRequest, bool> Match, TaskCompletionSource<(int, WatchRequest)> Waiter)> _waiters = [];

    /// <param name="streams">How many Watch streams to serve (the proxy's shared ones and the sessions' own, in the order they open).</param>
    public WatchEtcd(InMemoryEtcd etcd, int streams = 4)
    {
        _etcd = etcd;
        for (var i = 0; i < streams; i++)
        {
            Serve();
        }
    }

    public long Revision { get; private set; } = 1;

    public long Compacted { get; private set; }

    /// <summary>Every watch request etcd received, on any stream, in order.</summary>
    public List<(int Stream, WatchRequest Request)> Received { get; } = [];

    /// <summary>The streams opened so far.</summary>
    public int Opened
    {
        get
        {
            lock (_lock)
            {
                return _streams.Count(s => s.Stream.Opened.IsCompleted);
            }
        }
    }

    /// <summary>Upstream watches open now, over all streams.</summary>
    public int Watching
    {
        get
        {
            lock (_lock)
            {
                return _streams.Sum(s => s.Watches.Count);
            }
        }
    }

    public IReadOnlyList<WatchCreateRequest> Creates
    {
        get
        {
            lock (_lock)
            {
                return [.. Received.Select(r => r.Request.CreateRequest).OfType<WatchCreateRequest>()];
            }
        }
    }

    public ScriptedStream Stream(int index) => _streams[index].Stream;

    /// <summary>Completes with the first request received (already or later) that <paramref name="match"/> accepts, with its stream.</summary>
    public Task<(int Stream, WatchRequest Request)> ReceivedAsync(Func<WatchRequest, bool> match)
    {
        lock (_lock)
        {
            foreach (var received in Received)
            {
                if (match(received.Request))
                {
                    return Task.FromResult(received);
                }
            }

            var waiter = new TaskCompletionSource<(int, WatchRequest)>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((match, waiter));
            return waiter.Task.WaitAsync(TimeSpan.FromSeconds(20));
        }
    }

    public long Put(string key, string value)
    {
        lock (_lock)
        {
            Revision++;
            var previous = _kvs.GetValueOrDefault(key);
            var kv = new KeyValue
            {
                Key = ByteString.CopyFromUtf8(key),
                Value = ByteString.CopyFromUtf8(value),
                CreateRevision = previous?.CreateRevision ?? Revision,
                ModRevision = Revision,
                Version = (previous?.Version ?? 0) + 1,
            };
            _kvs[key] = kv;
            Publish(new Event { Type = Event.Types.EventType.Put, Kv = kv, PrevKv = previous });
            return Revision;
        }
    }

    public long Delete(string key)
    {
        lock (_lock)
        {
            Revision++;
            var previous = _kvs[key];
            _kvs.Remove(key);
            Publish(new Event { Type = Event.Types.EventType.Delete, Kv = new KeyValue { Key = previous.Key, ModRevision = Revision }, PrevKv = previous });
            return Revision;
        }
    }

    public void Compact(long revision)
    {
        lock (_lock)
        {
            Compacted = revision;
        }
    }

    private void Serve()
    {
        var served = new Served(_etcd.NextStream("Watch/Watch"), _streams.Count);
        _streams.Add(served);
        _ = Task.Run(() => AnswerAsync(served));
    }

    private async Task AnswerAsync(Served served)
    {
        await served.Stream.Opened;
        while (await served.Stream.Requests.WaitToReadAsync())
        {
            while (served.Stream.Requests.TryRead(out var message))
            {
                lock (_lock)
                {
                    var request = (WatchRequest)message;
                    Received.Add((served.Index, request));
                    Answer(served, request);
                    _waiters.RemoveAll(w => w.Match(request) && w.Waiter.TrySetResult((served.Index, request)));
                }
            }
        }
    }

    private void Answer(Served served, WatchRequest request)
    {
        switch (request.RequestUnionCase)
        {
            case WatchRequest.RequestUnionOneofCase.CreateRequest:
                var create = request.CreateRequest;
                served.Send(new WatchResponse { Header = Header(Revision), WatchId = create.WatchId, Created = true });
                if (create.StartRevision != 0 && create.StartRevision < Compacted)
                {
                    served.Send(new WatchResponse { Header = Header(0), WatchId = create.WatchId, CompactRevision = Compacted, Canceled = true });
                    return;
                }

                served.Watches[create.WatchId] = create;
                var missed = _log.Where(e => e.Kv.ModRevision >= create.StartRevision && create.StartRevision != 0 && Matches(create, e)).Select(e => Shaped(create, e)).ToList();
                if (missed.Count > 0)
                {
                    var batch = new WatchResponse { Header = Header(Revision), WatchId = create.WatchId };
                    batch.Events.AddRange(missed);
                    served.Send(batch);
                }

                break;
            case WatchRequest.RequestUnionOneofCase.CancelRequest:
                if (served.Watches.Remove(request.CancelRequest.WatchId))
                {
                    served.Send(new WatchResponse { Header = Header(Revision), WatchId = request.CancelRequest.WatchId, Canceled = true });
                }

                break;
            case WatchRequest.RequestUnionOneofCase.ProgressRequest:
                served.Send(new WatchResponse { Header = Header(Revision), WatchId = -1 });
                break;
            default:
                break;
        }
    }

    private void Publish(Event change)
    {
        _log.Add(change);
        foreach (var served in _streams)
        {
            foreach (var (id, create) in served.Watches)
            {
                if (Matches(create, change) && (create.StartRevision == 0 || create.StartRevision <= change.Kv.ModRevision))
                {
                    served.Send(new WatchResponse { Header = Header(Revision), WatchId = id, Events = { Shaped(create, change) } });
                }
            }
        }
    }

    private static ResponseHeader Header(long revision) => new() { ClusterId = 7, MemberId = 8, RaftTerm = 2, Revision = revision };

    private static Event Shaped(WatchCreateRequest create, Event change)
    {
        var shaped = change.Clone();
        if (!create.PrevKv || (change.Type == Event.Types.EventType.Put && change.Kv.CreateRevision == change.Kv.ModRevision))
        {
            shaped.PrevKv = null;
        }

        return shaped;
    }

    private static bool Matches(WatchCreateRequest create, Event change)
    {
        var key = change.Kv.Key.Span;
        var start = create.Key.IsEmpty ? (ReadOnlySpan<byte>)[0] : create.Key.Span;
        if (create.RangeEnd.IsEmpty)
        {
            return key.SequenceEqual(start);
        }

        return key.SequenceCompareTo(start) >= 0 && (create.RangeEnd.Span.SequenceEqual((ReadOnlySpan<byte>)[0]) || key.SequenceCompareTo(create.RangeEnd.Span) < 0);
    }

    private sealed class Served(ScriptedStream stream, int index)
    {
        public ScriptedStream Stream { get; } = stream;

        public int Index { get; } = index;

        public Dictionary<long, WatchCreateRequest> Watches { get; } = [];

        public void Send(WatchResponse response)
        {
            try
            {
                Stream.Respond(response);
            }
            catch (InvalidOperationException)
            {
                // The proxy ended the stream.
            }
        }
    }
}
