using System.Buffers;
using EtcdShield.Relay;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Gateway;

/// <summary>
/// The answers of a stream as grpc-gateway writes them: each message as <c>{"result":...}</c> and a newline, in one
/// write, so it leaves as one HTTP chunk (etcd3gw parses each chunk as a JSON document) at once. The relay makes
/// its writes take turns, so one buffer serves them all.
/// </summary>
internal sealed class JsonResultStream : IServerStreamWriter<IMessage>
{
    private static readonly byte[] Opening = "{\"result\":"u8.ToArray();
    private static readonly byte[] Closing = "}\n"u8.ToArray();

    private readonly HttpResponse _response;
    private readonly ArrayBufferWriter<byte> _buffer = new(4096);

    public JsonResultStream(HttpResponse response)
    {
        _response = response;
    }

    /// <summary>Whether a message has been written, so that an error must be written into the stream rather than as its status.</summary>
    public bool Started { get; private set; }

    public WriteOptions? WriteOptions { get; set; }

    public Task WriteAsync(IMessage message) => WriteAsync(message, _response.HttpContext.RequestAborted);

    public async Task WriteAsync(IMessage message, CancellationToken cancellationToken)
    {
        _buffer.ResetWrittenCount();
        _buffer.Write(Opening);
        // A shared watch's response arrives as its encoded bytes; JSON needs its fields.
        JsonpbWriter.Write(message is EncodedMessage encoded ? encoded.Parse() : message, _buffer);
        _buffer.Write(Closing);
        if (!Started)
        {
            _response.StatusCode = StatusCodes.Status200OK;
            _response.ContentType = GatewayEndpoint.JsonContentType;
            Started = true;
        }

        // Kestrel sends each write as it comes (one chunk on HTTP/1.1, DATA frames on HTTP/2) and flushes it.
        await _response.Body.WriteAsync(_buffer.WrittenMemory, cancellationToken).ConfigureAwait(false);
    }
}
