using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Google.Protobuf;

namespace EtcdShield.Tests.Watches;

/// <summary>Opens nothing; once armed, holds the next response with events until released.</summary>
internal sealed class HeldOpener : IStreamRewriter
{
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public volatile bool Armed;

    public TaskCompletionSource<WatchResponse> Held { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Release() => _released.TrySetResult();

    public async ValueTask<IMessage> RewriteResponseAsync(IMessage response, CancellationToken cancellationToken)
    {
        if (Armed && Held.TrySetResult((WatchResponse)response))
        {
            await _released.Task.WaitAsync(cancellationToken);
        }

        return response;
    }
}
