using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Relay;
using Google.Protobuf;

namespace EtcdShield.Watches;

/// <summary>
/// The bytes of watch responses as clients receive them: a body (header, events, fragment) encoded once and
/// shared, and each watch's <c>watch_id</c> written before it (<see cref="EncodedMessage"/>); and etcd's rule for
/// splitting a large response into fragments.
/// </summary>
internal static class WatchFrames
{
    /// <summary>WatchResponse.watch_id.</summary>
    public const int WatchIdField = 2;

    /// <summary>The filters a watch asked for, as an index: 0 none, 1 NOPUT, 2 NODELETE, 3 both (nothing passes).</summary>
    public static int ShapeOf(bool noPut, bool noDelete) => (noPut ? 1 : 0) | (noDelete ? 2 : 0);

    public static bool Passes(Event change, int shape) =>
        change.Type == Event.Types.EventType.Put ? (shape & 1) == 0 : (shape & 2) == 0;

    public static byte[] Body(ResponseHeader header, IEnumerable<Event> events, bool fragment = false)
    {
        var body = new WatchResponse { Header = header, Fragment = fragment };
        body.Events.AddRange(events);
        return body.ToByteArray();
    }

    public static EncodedMessage Frame(byte[] body, long watchId) => new(WatchResponse.Descriptor, body, WatchIdField, watchId);

    /// <summary>The size of a watch_id field of <paramref name="watchId"/> (none for 0).</summary>
    public static int WatchIdSize(long watchId) => watchId == 0 ? 0 : 1 + CodedOutputStream.ComputeInt64Size(watchId);

    /// <summary>The size of one event as a field of a WatchResponse (tag, length, message).</summary>
    public static int EventFieldSize(Event change) => 1 + CodedOutputStream.ComputeMessageSize(change);

    /// <summary>
    /// etcd's <c>sendFragments</c>: a response of at least <paramref name="maxBytes"/> with two events or more is
    /// split; each fragment takes events while the fragment (its flag set) stays under the limit, at least one.
    /// Returns the end (exclusive) of each fragment's events, or null when the response goes whole. Linear in the events.
    /// </summary>
    /// <param name="baseSize">The response's size without events and without the fragment flag (header and watch_id).</param>
    public static List<int>? FragmentEnds(IReadOnlyList<int> eventSizes, int baseSize, int maxBytes)
    {
        long whole = baseSize;
        foreach (var size in eventSizes)
        {
            whole += size;
        }

        if (whole < maxBytes || eventSizes.Count < 2)
        {
            return null;
        }

        // The fragment flag (field 7, true) adds two bytes to every fragment etcd measures.
        var flagged = baseSize + 2L;
        var ends = new List<int>();
        var i = 0;
        while (i < eventSizes.Count)
        {
            long sum = eventSizes[i];
            var j = i + 1;
            while (j < eventSizes.Count && flagged + sum + eventSizes[j] < maxBytes)
            {
                sum += eventSizes[j];
                j++;
            }

            ends.Add(j);
            i = j;
        }

        return ends;
    }

    /// <summary>
    /// One watch's own frames for <paramref name="events"/> (already filtered and cut to its start), fragmented when
    /// it asked for fragments; adds them to <paramref name="into"/> and returns their bytes.
    /// </summary>
    public static int AddOwnFrames(ClientWatch watch, ResponseHeader header, List<Event> events, int maxBytes, List<Outbound> into)
    {
        var bytes = 0;
        var ends = watch.Fragment ? FragmentEnds(events.ConvertAll(EventFieldSize), CodedOutputStream.ComputeMessageSize(header) + 1 + WatchIdSize(watch.Id), maxBytes) : null;
        if (ends is null)
        {
            bytes += Add(watch, Frame(Body(header, events), watch.Id), into);
            return bytes;
        }

        var start = 0;
        for (var f = 0; f < ends.Count; f++)
        {
            var end = ends[f];
            bytes += Add(watch, Frame(Body(header, events.GetRange(start, end - start), fragment: f < ends.Count - 1), watch.Id), into);
            start = end;
        }

        return bytes;
    }

    private static int Add(ClientWatch watch, EncodedMessage frame, List<Outbound> into)
    {
        var size = frame.CalculateSize();
        into.Add(new Outbound(frame, watch, size));
        return size;
    }
}

/// <summary>One response queued for a client, the watch it belongs to (its frames are dropped once the watch is cancelled), and its size.</summary>
internal readonly record struct Outbound(IMessage? Message, ClientWatch? Watch, int Bytes);
