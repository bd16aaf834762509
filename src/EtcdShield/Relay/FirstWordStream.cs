namespace EtcdShield.Relay;

/// <summary>
/// A connection to an etcd member without TLS, told apart by whether the member ever sent a byte. Over plain TCP
/// or a unix socket, a stopped or hung etcd still accepts (the kernel's listen queue does) and then says nothing;
/// with no handshake to time out, only HTTP/2's keep-alive ping ends the connection. <see cref="UpstreamDialer"/>
/// is told when such a connection closes silent, so that its next dial starts at another member.
/// </summary>
internal sealed class FirstWordStream : Stream
{
    private readonly Stream _inner;
    private readonly Action _closedSilent;
    private int _heard;
    private int _disposed;

    public FirstWordStream(Stream inner, Action closedSilent)
    {
        _inner = inner;
        _closedSilent = closedSilent;
    }

    public override bool CanRead => _inner.CanRead;

    public override bool CanSeek => false;

    public override bool CanWrite => _inner.CanWrite;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Heard(_inner.Read(buffer, offset, count));

    // Once the member has spoken, reads go straight through, without a state machine of their own.
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Volatile.Read(ref _heard) == 1 ? _inner.ReadAsync(buffer, cancellationToken) : FirstReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => _inner.Write(buffer, offset, count);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _inner.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _inner.WriteAsync(buffer, offset, count, cancellationToken);

    public override void Flush() => _inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _inner.FlushAsync(cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && Closing())
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (Closing())
        {
            await _inner.DisposeAsync().ConfigureAwait(false);
        }

        await base.DisposeAsync().ConfigureAwait(false);
    }

    private async ValueTask<int> FirstReadAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        Heard(await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

    private int Heard(int read)
    {
        if (read > 0)
        {
            Volatile.Write(ref _heard, 1);
        }

        return read;
    }

    private bool Closing()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return false;
        }

        if (Volatile.Read(ref _heard) == 0)
        {
            _closedSilent();
        }

        return true;
    }
}
