using System.Threading.Channels;
using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Core;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Relay.Support;

/// <summary>
/// One Watch stream held open by a test: requests are written as the test goes, and responses are read in the
/// background so the test can wait, with a deadline, for the one it expects and see everything that came first.
/// </summary>
internal sealed class WatchSession : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call;
    private readonly Channel<WatchResponse> responses = Channel.CreateUnbounded<WatchResponse>();
    private readonly CancellationTokenSource stop = new();
    private readonly Task reading;

    public WatchSession(GrpcChannel channel, Metadata? headers = null)
    {
        call = new Watch.WatchClient(channel).Watch(headers, cancellationToken: stop.Token);
        reading = ReadAsync();
    }

    private readonly List<WatchResponse> received = [];

    /// <summary>A copy of every response received so far, in order, including those already returned.</summary>
    public IReadOnlyList<WatchResponse> Received
    {
        get
        {
            lock (received)
            {
                return received.ToList();
            }
        }
    }

    public Task SendAsync(WatchRequest request) => call.RequestStream.WriteAsync(request);

    public Task CreateAsync(WatchCreateRequest create) => SendAsync(new WatchRequest { CreateRequest = create });

    /// <summary>Reads responses until one matches; fails with what did arrive if none does within the deadline or the stream ends.</summary>
    public async Task<WatchResponse> NextAsync(Func<WatchResponse, bool> predicate, TimeSpan? timeout = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            while (await responses.Reader.WaitToReadAsync(deadline.Token))
            {
                while (responses.Reader.TryRead(out var response))
                {
                    if (predicate(response))
                    {
                        return response;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            throw new TimeoutException($"No matching watch response in time. Received:{Environment.NewLine}{Describe()}");
        }

        await reading;
        throw new InvalidOperationException($"The watch stream ended without a matching response. Received:{Environment.NewLine}{Describe()}");
    }

    public string Describe()
    {
        return string.Join(Environment.NewLine, Received.Select(r => r.ToString()));
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        try
        {
            await reading;
        }
        catch (RpcException)
        {
            // Already seen by the test through NextAsync, or the cancellation just requested.
        }

        call.Dispose();
        stop.Dispose();
    }

    private async Task ReadAsync()
    {
        try
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync(stop.Token))
            {
                lock (received)
                {
                    received.Add(response);
                }

                responses.Writer.TryWrite(response);
            }

            responses.Writer.TryComplete();
        }
        catch (Exception e)
        {
            responses.Writer.TryComplete(e is OperationCanceledException ? null : e);
            if (e is not OperationCanceledException and not RpcException { StatusCode: StatusCode.Cancelled })
            {
                throw;
            }
        }
    }
}
