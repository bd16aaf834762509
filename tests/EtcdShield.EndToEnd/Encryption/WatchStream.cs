using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Grpc.Core;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>One watch on a raw gRPC Watch stream, read with deadlines: what a watcher receives, response by response.</summary>
internal sealed class WatchStream : IAsyncDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    private readonly AsyncDuplexStreamingCall<WatchRequest, WatchResponse> _call;
    private readonly CancellationTokenSource _stop = new();

    private WatchStream(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call) => _call = call;

    /// <summary>Every response after the one that confirmed creation.</summary>
    public List<WatchResponse> Responses { get; } = [];

    /// <summary>Opens the stream and returns once etcd confirmed the watch.</summary>
    public static async Task<WatchStream> OpenAsync(GrpcChannel channel, WatchCreateRequest create)
    {
        var stream = new WatchStream(new Watch.WatchClient(channel).Watch(cancellationToken: default));
        try
        {
            await stream._call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = create });
            var first = await stream.NextAsync();
            Assert.True(first is { Created: true }, $"expected the watch to be created, got {first}");
            return stream;
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
    }

    /// <summary>Reads until <paramref name="count"/> events arrived, and returns them in order.</summary>
    public async Task<List<Event>> ReadEventsAsync(int count)
    {
        var events = new List<Event>();
        while (events.Count < count)
        {
            var response = await NextAsync() ?? throw new InvalidOperationException($"the watch ended after {events.Count} of {count} events");
            Responses.Add(response);
            events.AddRange(response.Events);
        }

        return events;
    }

    /// <summary>Reads until the stream fails, and returns the failure; events that came before are in <see cref="Responses"/>.</summary>
    public async Task<RpcException> ReadUntilFailureAsync()
    {
        try
        {
            while (await NextAsync() is { } response)
            {
                Responses.Add(response);
            }
        }
        catch (RpcException failure)
        {
            return failure;
        }

        throw new InvalidOperationException("the watch ended without an error");
    }

    private async Task<WatchResponse?> NextAsync()
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(Deadline);
        try
        {
            return await _call.ResponseStream.MoveNext(deadline.Token) ? _call.ResponseStream.Current : null;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && deadline.IsCancellationRequested)
        {
            throw new TimeoutException($"no watch response within {Deadline.TotalSeconds:0} s", e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _call.Dispose();
        _stop.Dispose();
    }
}
