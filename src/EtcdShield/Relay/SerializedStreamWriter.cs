using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// A stream two tasks may write to: gRPC allows one write at a time. On a watch stream both the relay of etcd's
/// answers and the refusal of a forbidden watch write to the client, and both the client's requests and the
/// proxy's cancellation of a watch no longer allowed go to etcd.
/// </summary>
internal sealed class SerializedStreamWriter<T> : IDisposable
{
    private readonly IAsyncStreamWriter<T> _inner;
    private readonly SemaphoreSlim? _turn;
    private bool _completed;

    /// <param name="shared">False when only one task ever writes: then writes go straight through.</param>
    public SerializedStreamWriter(IAsyncStreamWriter<T> inner, bool shared)
    {
        _inner = inner;
        _turn = shared ? new SemaphoreSlim(1, 1) : null;
    }

    public async Task WriteAsync(T message, CancellationToken cancellationToken)
    {
        if (_turn is null)
        {
            await _inner.WriteAsync(message, cancellationToken).ConfigureAwait(false);
            return;
        }

        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _inner.WriteAsync(message, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _turn.Release();
        }
    }

    /// <summary>Writes a message the proxy adds to the stream, unless the stream was completed before it.</summary>
    public Task WriteUnlessCompletedAsync(T message, CancellationToken cancellationToken) =>
        InTurnAsync(() => _completed ? Task.CompletedTask : _inner.WriteAsync(message, cancellationToken), cancellationToken);

    /// <summary>Completes the stream (<paramref name="complete"/>) once no write is under way; later additions are skipped.</summary>
    public Task CompleteAsync(Func<Task> complete, CancellationToken cancellationToken) =>
        InTurnAsync(
            () =>
            {
                _completed = true;
                return complete();
            },
            cancellationToken);

    public void Dispose() => _turn?.Dispose();

    private async Task InTurnAsync(Func<Task> write, CancellationToken cancellationToken)
    {
        if (_turn is null)
        {
            await write().ConfigureAwait(false);
            return;
        }

        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await write().ConfigureAwait(false);
        }
        finally
        {
            _turn.Release();
        }
    }
}
