using Grpc.AspNetCore.Server;
using Grpc.Core;

namespace EtcdShield.Hosting;

/// <summary>
/// The HTTP responses of calls that end at once on shutdown (streams, and a Lock or Campaign waiting on etcd), counted
/// until Kestrel has written their last frame. A handler that has returned has not yet sent its status: the trailers
/// follow, and a server that begins its graceful close in between may close the connection before they are out, so
/// the client hears "connection closed" instead of UNAVAILABLE. <see cref="StreamShutdown"/> waits for these.
/// </summary>
internal sealed class StreamResponses
{
    private readonly Lock _lock = new();
    private int _open;
    private TaskCompletionSource? _allCompleted;

    /// <summary>Counts the request's response if its call is one that ends on shutdown.</summary>
    public void Track(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method is not { } method || !EndsOnShutdown(method))
        {
            return;
        }

        lock (_lock)
        {
            _open++;
        }

        // After the response's last frame is written, whether the call ended well, failed or was aborted.
        context.Response.OnCompleted(() =>
        {
            lock (_lock)
            {
                if (--_open == 0)
                {
                    _allCompleted?.TrySetResult();
                    _allCompleted = null;
                }
            }

            return Task.CompletedTask;
        });
    }

    public Task AllCompletedAsync()
    {
        lock (_lock)
        {
            if (_open == 0)
            {
                return Task.CompletedTask;
            }

            _allCompleted ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _allCompleted.Task;
        }
    }

    private static bool EndsOnShutdown(IMethod method) =>
        method.Type != MethodType.Unary || method.FullName is "/v3lockpb.Lock/Lock" or "/v3electionpb.Election/Campaign";
}
