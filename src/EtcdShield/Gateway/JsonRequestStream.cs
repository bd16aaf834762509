using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Gateway;

/// <summary>
/// The client's half of a gateway stream: the JSON messages of the request body, one after another, each checked
/// against the request size limit as gRPC checks a message; the end of the body half-closes the stream, as
/// grpc-gateway's <c>CloseSend</c> does.
/// </summary>
internal sealed class JsonRequestStream : IAsyncStreamReader<IMessage>
{
    private readonly JsonMessageReader _reader;
    private readonly int _maxMessageBytes;
    private IMessage? _current;

    public JsonRequestStream(JsonMessageReader reader, int maxMessageBytes)
    {
        _reader = reader;
        _maxMessageBytes = maxMessageBytes;
    }

    public IMessage Current => _current ?? throw new InvalidOperationException("no message has been read");

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        _current = await _reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        if (_current is not null)
        {
            GatewayEndpoint.CheckSize(_current, _maxMessageBytes);
        }

        return _current is not null;
    }
}
