using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;

namespace EtcdShield.Watches;

/// <summary>
/// One response of a shared upstream watch, its values already opened, as every subscriber gets it: the body is
/// encoded once per filter shape the first time a subscriber of that shape needs it, and kept for the history.
/// Used under its feed's lock only.
/// </summary>
internal sealed class FeedResponse
{
    private readonly byte[]?[] _bodies = new byte[]?[4];
    private readonly bool[] _encoded = new bool[4];

    public FeedResponse(WatchResponse response)
    {
        Response = response;
        Revision = response.Header?.Revision ?? 0;
        if (response.Events.Count > 0)
        {
            FirstEventRevision = response.Events[0].Kv.ModRevision;
            LastEventRevision = response.Events[^1].Kv.ModRevision;
            Size = response.CalculateSize();
        }
    }

    public WatchResponse Response { get; }

    /// <summary>The header revision: the feed has had everything in its range up to it.</summary>
    public long Revision { get; }

    public long FirstEventRevision { get; }

    public long LastEventRevision { get; }

    /// <summary>Its encoded size, what the history is charged for it.</summary>
    public int Size { get; }

    public bool HasEvents => Response.Events.Count > 0;

    /// <summary>The shared body for watches of <paramref name="shape"/> (<see cref="WatchFrames.ShapeOf"/>), or null when their filters leave no event.</summary>
    public byte[]? Body(int shape)
    {
        if (!_encoded[shape])
        {
            _encoded[shape] = true;
            _bodies[shape] = shape == 0
                ? WatchFrames.Body(Response.Header, Response.Events)
                : Filtered(shape) is { Count: > 0 } kept ? WatchFrames.Body(Response.Header, kept) : null;
        }

        return _bodies[shape];
    }

    /// <summary>The events a watch of <paramref name="shape"/> starting at <paramref name="from"/> gets, for a frame of its own.</summary>
    public List<Event> EventsFor(int shape, long from)
    {
        var kept = new List<Event>();
        foreach (var change in Response.Events)
        {
            if (change.Kv.ModRevision >= from && WatchFrames.Passes(change, shape))
            {
                kept.Add(change);
            }
        }

        return kept;
    }

    private List<Event> Filtered(int shape) => EventsFor(shape, 0);
}
