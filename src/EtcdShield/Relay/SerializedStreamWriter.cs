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
    private readonly SemaphoreSlim _turn = new(1, 1);

    public SerializedStreamWriter(IServerStreamWriter<IMessage> inner) => _inner = inner;

    public async Task WriteAsync(IMessage message, CancellationToken cancellationToken)
    {
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

    public void Dispose() => _turn.Dispose();
}
