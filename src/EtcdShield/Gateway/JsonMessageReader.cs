using System.Buffers;
using System.IO.Pipelines;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace EtcdShield.Gateway;

/// <summary>
/// The successive JSON values of a gateway request body (grpc-gateway reads a body with Go's json.Decoder:
/// concatenated values, whitespace between them optional), each read into a message of one type. A small state
/// machine (depth, inside a string, after a backslash) finds where each value ends, looking at every byte once
/// however the body is split, and never past the value it returns; only then is the value parsed. A value grows
/// in the pipe's buffer only up to <c>maxMessageBytes</c>: one more byte is ResourceExhausted.
/// </summary>
internal sealed class JsonMessageReader
{
    private readonly PipeReader _body;
    private readonly MessageDescriptor _descriptor;
    private readonly int _maxMessageBytes;
    private bool _ended;

    // A refused body stays refused: a later read must not look like a clean end of the stream.
    private Exception? _failure;

    // The value being found: whether its first byte was seen, how many bytes were scanned, and where scanning stopped.
    private bool _started;
    private long _length;
    private SequencePosition _scanned;
    private int _depth;
    private bool _inString;
    private bool _escaped;
    private int _literal;

    public JsonMessageReader(PipeReader body, MessageDescriptor descriptor, int maxMessageBytes)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxMessageBytes);
        _body = body;
        _descriptor = descriptor;
        _maxMessageBytes = maxMessageBytes;
    }

    /// <summary>The next message, or null once the body has ended with nothing but whitespace left.</summary>
    public async ValueTask<IMessage?> ReadAsync(CancellationToken cancellationToken)
    {
        if (_failure is not null)
        {
            throw _failure;
        }

        while (!_ended)
        {
            var result = await _body.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (result.IsCanceled)
            {
                _body.AdvanceTo(result.Buffer.Start);
                throw new OperationCanceledException(cancellationToken);
            }

            var buffer = result.Buffer;
            SequencePosition? end;
            try
            {
                end = Scan(ref buffer);
            }
            catch (RpcException e)
            {
                _failure = e;
                _body.AdvanceTo(buffer.Start, buffer.End);
                throw;
            }

            if (end is { } valueEnd)
            {
                IMessage message;
                try
                {
                    message = Parse(buffer.Slice(buffer.Start, valueEnd));
                }
                catch (RpcException e)
                {
                    _failure = e;
                    _body.AdvanceTo(valueEnd);
                    throw;
                }

                _body.AdvanceTo(valueEnd);
                Reset();
                return message;
            }

            if (!result.IsCompleted)
            {
                // Nothing consumed past leading whitespace; everything seen, so the next read waits for more.
                _body.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }

            _ended = true;
            _body.AdvanceTo(buffer.End);
            if (_started)
            {
                _failure = JsonpbReader.Invalid("the request body ends inside a JSON value");
                throw _failure;
            }
        }

        return null;
    }

    /// <summary>
    /// Scans the bytes not yet seen. <paramref name="buffer"/> becomes the value's bytes from its start (leading
    /// whitespace dropped); returns the position just after the value's last byte, or null when it has not ended.
    /// </summary>
    private SequencePosition? Scan(ref ReadOnlySequence<byte> buffer)
    {
        if (!_started)
        {
            var skipped = 0L;
            foreach (var segment in buffer)
            {
                var span = segment.Span;
                var i = span.IndexOfAnyExcept(" \t\r\n"u8);
                if (i >= 0)
                {
                    skipped += i;
                    break;
                }

                skipped += span.Length;
            }

            buffer = buffer.Slice(skipped);
            _scanned = buffer.Start;
            if (buffer.IsEmpty)
            {
                return null;
            }
        }

        var unseen = buffer.Slice(_scanned);
        var offset = 0L;
        foreach (var segment in unseen)
        {
            var span = segment.Span;
            for (var i = 0; i < span.Length; i++)
            {
                _length++;
                if (_length > _maxMessageBytes)
                {
                    throw new RpcException(new Status(StatusCode.ResourceExhausted,
                        $"gateway request message larger than max ({_length} vs. {_maxMessageBytes})"));
                }

                if (Step(span[i]))
                {
                    return unseen.GetPosition(offset + i + 1);
                }
            }

            offset += span.Length;
        }

        _scanned = buffer.End;
        return null;
    }

    // One byte of the value; true when it is the value's last. Only objects and null are requests, so the first
    // byte decides; everything else is checked by the parser once the value's extent is known.
    private bool Step(byte b)
    {
        if (!_started)
        {
            _started = true;
            switch (b)
            {
                case (byte)'{':
                    _depth = 1;
                    return false;
                case (byte)'n':
                    _literal = 1;
                    return false;
                default:
                    throw JsonpbReader.Invalid($"a {_descriptor.Name} must be a JSON object");
            }
        }

        if (_literal > 0)
        {
            if (b != "null"u8[_literal])
            {
                throw JsonpbReader.Invalid("malformed JSON: invalid literal");
            }

            return ++_literal == 4;
        }

        if (_inString)
        {
            if (_escaped)
            {
                _escaped = false;
            }
            else if (b == '\\')
            {
                _escaped = true;
            }
            else if (b == '"')
            {
                _inString = false;
            }

            return false;
        }

        switch (b)
        {
            case (byte)'"':
                _inString = true;
                return false;
            case (byte)'{' or (byte)'[':
                if (++_depth > JsonpbReader.MaxDepth)
                {
                    throw JsonpbReader.Invalid($"JSON nested deeper than {JsonpbReader.MaxDepth} levels");
                }

                return false;
            case (byte)'}' or (byte)']':
                return --_depth == 0;
            default:
                return false;
        }
    }

    private IMessage Parse(ReadOnlySequence<byte> value)
    {
        if (value.IsSingleSegment)
        {
            return JsonpbReader.Read(_descriptor, value.FirstSpan);
        }

        var length = (int)value.Length;
        var copy = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            value.CopyTo(copy);
            return JsonpbReader.Read(_descriptor, copy.AsSpan(0, length));
        }
        finally
        {
            // The copy holds a client's plaintext values.
            ArrayPool<byte>.Shared.Return(copy, clearArray: true);
        }
    }

    private void Reset()
    {
        _started = false;
        _length = 0;
        _depth = 0;
        _inString = false;
        _escaped = false;
        _literal = 0;
    }
}
