using EtcdShield.Tests.Relay;
using Google.Protobuf;

namespace EtcdShield.Tests.Watches;

/// <summary>A client stream that reads only while the test holds it open: a slow reader, whose writes wait until then.</summary>
internal sealed class GatedClientStream
{
    private readonly object _lock = new();
    private TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public GatedClientStream() => Stream = new Gated(this);

    public ClientStream<IMessage> Stream { get; }

    public void Open()
    {
        lock (_lock)
        {
            _open.TrySetResult();
        }
    }

    public void Close()
    {
        lock (_lock)
        {
            if (_open.Task.IsCompleted)
            {
                _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    private Task Opened
    {
        get
        {
            lock (_lock)
            {
                return _open.Task;
            }
        }
    }

    private sealed class Gated(GatedClientStream gate) : ClientStream<IMessage>
    {
        public override async Task WriteAsync(IMessage message, CancellationToken cancellationToken)
        {
            await gate.Opened.WaitAsync(cancellationToken);
            await base.WriteAsync(message, cancellationToken);
        }
    }
}
