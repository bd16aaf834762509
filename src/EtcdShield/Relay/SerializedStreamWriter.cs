using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// A response stream two tasks may write to: gRPC allows one write at a time, and on a watch stream both the
/// relay of etcd's answers and the refusal of a forbidden watch write to the client.
/// </summary>
internal sealed class SerializedStreamWriter : IDisposable
{
    private readonly IServerStreamWriter<IMessage> _inner;
    private readonly SemaphoreSlim? _turn;

    /// <param name="shared">False when only one task ever writes: then writes go straight through.</param>
    public SerializedStreamWriter(IServerStreamWriter<IMessage> inner, bool shared)
    {
        _inner = inner;
        _turn = shared ? new SemaphoreSlim(1, 1) : null;
    }

    public async Task WriteAsync(IMessage message, CancellationToken cancellationToken)
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

    public void Dispose() => _turn?.Dispose();
}
