using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.Watches;

/// <summary>Where a client watch is in its life.</summary>
internal enum WatchState
{
    /// <summary>Waiting for its created answer.</summary>
    Creating,

    /// <summary>Served from its feed.</summary>
    Shared,

    /// <summary>Off its feed, its own upstream watch being opened.</summary>
    Demoting,

    /// <summary>Served by its own upstream watch, meaning to rejoin the feed.</summary>
    Private,

    /// <summary>Gone: cancelled by the client, by the proxy or by etcd.</summary>
    Cancelled,
}

/// <summary>
/// One watch of a client stream: what the client asked for (its id, range, start, filters, prev_kv,
/// progress_notify, fragment) and where it is. The mutable state is its session's, changed under the session's
/// lock; <see cref="Feed"/>, <see cref="OnFeed"/> and <see cref="FeedIndex"/> are its feed's, under the feed's lock.
/// </summary>
internal sealed class ClientWatch
{
    private readonly TaskCompletionSource _answered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ClientWatch(WatchSession session, long id, WatchCreateRequest create, KeyRange range)
    {
        Session = session;
        Id = id;
        Range = range;
        Key = create.Key;
        RangeEnd = create.RangeEnd;
        StartRevision = create.StartRevision;
        PrevKv = create.PrevKv;
        ProgressNotify = create.ProgressNotify;
        Fragment = create.Fragment;
        Shape = WatchFrames.ShapeOf(
            create.Filters.Contains(WatchCreateRequest.Types.FilterType.Noput),
            create.Filters.Contains(WatchCreateRequest.Types.FilterType.Nodelete));
    }

    public WatchSession Session { get; }

    /// <summary>The id the client knows it by.</summary>
    public long Id { get; }

    public KeyRange Range { get; }

    /// <summary>The key and range end as the client sent them (etcd normalizes them when an upstream watch is created).</summary>
    public ByteString Key { get; }

    public ByteString RangeEnd { get; }

    public long StartRevision { get; }

    public bool PrevKv { get; }

    public bool ProgressNotify { get; }

    public bool Fragment { get; }

    /// <summary>Its filters (<see cref="WatchFrames.ShapeOf"/>).</summary>
    public int Shape { get; }

    /// <summary>The key bytes it counts against the stream's limit.</summary>
    public long KeyBytes => Range.Start.Length + (Range.End?.Length ?? 0);

    public WatchState State { get; set; }

    /// <summary>Every event below this revision has been queued for the client (or was never its to get).</summary>
    public long Next { get; set; }

    /// <summary>The id of its own upstream watch on the session's stream, while it has one.</summary>
    public long PrivateId { get; set; }

    public bool CreatedSent { get; set; }

    /// <summary>Whether etcd has shown the watch is not cancelled for compaction: it was shared, or its own upstream watch answered after its created answer.</summary>
    public bool Proven { get; set; }

    /// <summary>Whether events were queued for it since the last progress tick.</summary>
    public bool EventsSinceTick { get; set; }

    public Feed? Feed { get; set; }

    public bool OnFeed { get; set; }

    public int FeedIndex { get; set; }

    /// <summary>Completes once the client has its created answer, or the watch is gone.</summary>
    public Task Answered => _answered.Task;

    public void MarkAnswered() => _answered.TrySetResult();
}
