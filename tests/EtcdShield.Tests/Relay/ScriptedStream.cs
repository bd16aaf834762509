using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Tests.Relay;

/// <summary>
/// One streaming call to the in-memory etcd, played by the test: it sends etcd's messages with <see cref="Respond"/>,
/// ends the stream with <see cref="Complete"/> or <see cref="Fail"/>, and reads what the caller wrote from
/// <see cref="Requests"/> (copies, parsed as etcd would parse them). Nothing happens until the test says so.
/// </summary>
internal sealed class ScriptedStream
{
    private readonly Channel<IMessage> _responses = Channel.CreateUnbounded<IMessage>();
    private readonly Channel<IMessage> _requests = Channel.CreateUnbounded<IMessage>();
    private readonly TaskCompletionSource<CallOptions> _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _writeRefused = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Continuations run inline: the caller's reaction to the refused write is over before the trailers are sent.
    private readonly TaskCompletionSource _refusal = new();
    private Status _status = Status.DefaultSuccess;
    private bool _refusingWrites;
    private bool _trailersSent;
    private bool _cancelledFirst;

    /// <summary>Completes, with the call's options, when the caller opens the stream.</summary>
    public Task<CallOptions> Opened => _opened.Task;

    /// <summary>Completes when the caller disposes of the call, as the relay does when it is done with it.</summary>
    public Task Disposed => _disposed.Task;

    /// <summary>What the caller sent: a server-streaming call's one request, or each message of a duplex call.</summary>
    public ChannelReader<IMessage> Requests => _requests.Reader;

    /// <summary>Whether the caller said it has no more to send (duplex only).</summary>
    public bool RequestsCompleted => _requests.Reader.Completion.IsCompleted;

    public void Respond(IMessage response) =>
        Require(_responses.Writer.TryWrite(response), "the stream has already ended");

    public void Complete() => End(Status.DefaultSuccess);

    public void Fail(StatusCode code, string detail) => End(new Status(code, detail));

    /// <summary>
    /// Ends the call with a status that only the caller's next write notices, as when grpc-dotnet's reader has not yet
    /// seen the trailers that a write on the finished call already throws.
    /// </summary>
    public void FailUnread(StatusCode code, string detail) => _status = new Status(code, detail);

    /// <summary>
    /// Holds the caller's next write until the test ends the call with <see cref="Fail"/>, which then refuses the write
    /// first and sends the trailers after, as HTTP/2 does when etcd ends a call. Until then the call has no status, and
    /// a caller that cancels it in reaction to the refused write gets its own cancellation for good, as with grpc-dotnet.
    /// </summary>
    public void RefuseWrites() => _refusingWrites = true;

    /// <summary>Completes when a write is being held after <see cref="RefuseWrites"/>.</summary>
    public Task WriteRefused => _writeRefused.Task;

    internal void Open(CallOptions options) => _opened.TrySetResult(options);

    internal void Received(IMessage request)
    {
        _requests.Writer.TryWrite(request);
        _requests.Writer.TryComplete();
    }

    internal Status GetStatus()
    {
        if (_refusingWrites && _cancelledFirst)
        {
            return new Status(StatusCode.Cancelled, "Call canceled by the client.");
        }

        Require(!_refusingWrites || _trailersSent, "Unable to get the status because the call is not complete.");
        return _status;
    }

    internal void Dispose()
    {
        _disposed.TrySetResult();
        _responses.Writer.TryComplete(new RpcException(new Status(StatusCode.Cancelled, "Call canceled by the client.")));
    }

    internal IAsyncStreamReader<T> Reader<T>(Marshaller<T> marshaller, CancellationToken cancellationToken) =>
        new ResponseReader<T>(this, marshaller, cancellationToken);

    internal IClientStreamWriter<T> Writer<T>(Marshaller<T> marshaller, MessageParser parser) =>
        new RequestWriter<T>(this, marshaller, parser);

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new InvalidOperationException(message);
        }
    }

    private void End(Status status)
    {
        if (_refusingWrites)
        {
            _refusal.TrySetException(new IOException("The request was aborted."));
        }

        _trailersSent = true;
        _status = status;
        Require(
            status.StatusCode == StatusCode.OK ? _responses.Writer.TryComplete() : _responses.Writer.TryComplete(new RpcException(status)),
            "the stream has already ended");
    }

    private sealed class ResponseReader<T>(ScriptedStream stream, Marshaller<T> marshaller, CancellationToken callToken) : IAsyncStreamReader<T>
    {
        public T Current { get; private set; } = default!;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            using var both = CancellationTokenSource.CreateLinkedTokenSource(callToken, cancellationToken);
            try
            {
                if (!await stream._responses.Reader.WaitToReadAsync(both.Token))
                {
                    return false;
                }
            }
            catch (OperationCanceledException) when (both.IsCancellationRequested)
            {
                stream._cancelledFirst |= !stream._trailersSent;
                throw new RpcException(new Status(StatusCode.Cancelled, "Call canceled by the client."));
            }
            catch (RpcException) when (stream._refusingWrites && both.IsCancellationRequested)
            {
                // Cancelled before the trailers were read: the call's status is the cancellation.
                stream._cancelledFirst = true;
                throw new RpcException(new Status(StatusCode.Cancelled, "Call canceled by the client."));
            }

            var message = await stream._responses.Reader.ReadAsync(both.Token);
            Current = Wire.Deserialize(marshaller, message.ToByteArray());
            return true;
        }
    }

    private sealed class RequestWriter<T>(ScriptedStream stream, Marshaller<T> marshaller, MessageParser parser) : IClientStreamWriter<T>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(T message)
        {
            if (stream._status.StatusCode != StatusCode.OK)
            {
                throw new RpcException(stream._status);
            }

            if (stream._refusingWrites)
            {
                stream._writeRefused.TrySetResult();
                return stream._refusal.Task;
            }

            Require(stream._requests.Writer.TryWrite(parser.ParseFrom(Wire.Serialize(marshaller, message))), "the request stream is already complete");
            return Task.CompletedTask;
        }

        public Task WriteAsync(T message, CancellationToken cancellationToken) => WriteAsync(message);

        public Task CompleteAsync()
        {
            stream._requests.Writer.TryComplete();
            return Task.CompletedTask;
        }
    }
}
