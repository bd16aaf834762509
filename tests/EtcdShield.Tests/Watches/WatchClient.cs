using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using EtcdShield.Tests.Relay;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Tests.Watches;

/// <summary>One client Watch stream through the bed's relay, as a client sees it: what it sends, and the responses parsed back.</summary>
internal sealed class WatchClient
{
    private readonly ClientStream<IMessage> _stream;

    public WatchClient(RelayBed bed, ClientStream<IMessage>? stream = null, Metadata? headers = null, CancellationToken gone = default)
    {
        _stream = stream ?? new ClientStream<IMessage>();
        Relay = bed.Relay.DuplexStreamingAsync(RelayBed.Method("Watch/Watch"), _stream, _stream, bed.Context(headers, gone));
    }

    /// <summary>The relay's work on the stream; ends when the stream does.</summary>
    public Task Relay { get; }

    public static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    public void Create(string key, string? rangeEnd = null, long watchId = 0, long start = 0, bool prevKv = false, bool progressNotify = false, bool fragment = false, params WatchCreateRequest.Types.FilterType[] filters)
    {
        var create = new WatchCreateRequest { Key = B(key), WatchId = watchId, StartRevision = start, PrevKv = prevKv, ProgressNotify = progressNotify, Fragment = fragment };
        if (rangeEnd is not null)
        {
            create.RangeEnd = B(rangeEnd);
        }

        create.Filters.AddRange(filters);
        _stream.Send(new WatchRequest { CreateRequest = create });
    }

    public void Cancel(long watchId) => _stream.Send(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = watchId } });

    public void RequestProgress() => _stream.Send(new WatchRequest { ProgressRequest = new WatchProgressRequest() });

    public void CloseSending() => _stream.CloseSending();

    /// <summary>The next response the proxy wrote, as the client parses it.</summary>
    public async Task<WatchResponse> NextAsync()
    {
        var message = await _stream.Received.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        return Parse(message);
    }

    /// <summary>The response as a client parses it off the wire: an encoded frame is its bytes.</summary>
    public static WatchResponse Parse(IMessage message) =>
        WatchResponse.Parser.ParseFrom(message is EncodedMessage encoded ? encoded.ToArray() : message.ToByteArray());

    /// <summary>Whether a response is waiting to be read now.</summary>
    public bool HasWaiting => _stream.Received.TryPeek(out _);

    /// <summary>Watches <paramref name="key"/> and returns its created answer.</summary>
    public async Task<WatchResponse> WatchAsync(string key, string? rangeEnd = null, long watchId = 0, long start = 0, bool prevKv = false, bool progressNotify = false, bool fragment = false, params WatchCreateRequest.Types.FilterType[] filters)
    {
        Create(key, rangeEnd, watchId, start, prevKv, progressNotify, fragment, filters);
        return await NextAsync();
    }
}
