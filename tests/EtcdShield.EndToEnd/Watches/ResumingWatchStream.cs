using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Core;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// One client Watch stream with several watches that carries on as clientv3's watcher does when the stream breaks: a
/// retryable status (Unavailable) opens a new stream and creates every watch again from the revision after the last
/// event it received (a head watch from its created answer's revision + 1 when it received none). Any other end, or
/// a watch cancelled by the server, stops it: clientv3 would give up there too.
/// </summary>
internal sealed class ResumingWatchStream : IAsyncDisposable
{
    private readonly object gate = new();
    private readonly GrpcChannel channel;
    private readonly List<Watched> watches;
    private readonly List<string> ends = [];
    private readonly CancellationTokenSource stop = new();
    private readonly Task running;

    /// <param name="creates">The watches, as first created; their <c>watch_id</c> is set from their position.</param>
    public ResumingWatchStream(GrpcChannel channel, IEnumerable<WatchCreateRequest> creates)
    {
        this.channel = channel;
        watches = creates.Select(c => new Watched(c.Clone())).ToList();
        running = Task.Run(RunAsync);
    }

    public int Count => watches.Count;

    /// <summary>How each stream ended: the status code of each break, in order (Unavailable for every break clientv3 resumes from).</summary>
    public IReadOnlyList<string> Ends
    {
        get
        {
            lock (gate)
            {
                return [.. ends];
            }
        }
    }

    /// <summary>Whether every watch has been created at least once.</summary>
    public bool AllCreated
    {
        get
        {
            lock (gate)
            {
                return watches.All(w => w.Start > 0);
            }
        }
    }

    /// <summary>The create of watch <paramref name="index"/> as first made, its start revision set to where it really started (a head watch: after its created answer's revision).</summary>
    public WatchCreateRequest Started(int index)
    {
        lock (gate)
        {
            var create = watches[index].Create.Clone();
            create.StartRevision = watches[index].Start;
            return create;
        }
    }

    /// <summary>Every event watch <paramref name="index"/> received over all its streams, as responses of watch id 0.</summary>
    public IReadOnlyList<WatchResponse> Received(int index)
    {
        lock (gate)
        {
            return [.. watches[index].Responses];
        }
    }

    /// <summary>Whether watch <paramref name="index"/> received an event at or after <paramref name="revision"/>.</summary>
    public bool Reached(int index, long revision)
    {
        lock (gate)
        {
            return watches[index].Next > revision;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        await running;
        stop.Dispose();
    }

    private async Task RunAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            string end;
            try
            {
                using var call = new Watch.WatchClient(channel).Watch(cancellationToken: stop.Token);
                var reading = ReadAsync(call);
                try
                {
                    for (var i = 0; i < watches.Count; i++)
                    {
                        WatchCreateRequest create;
                        lock (gate)
                        {
                            create = watches[i].Create.Clone();
                            create.WatchId = i;
                            create.StartRevision = watches[i].Next;
                        }

                        await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = create });
                    }
                }
                catch (Exception e) when (!stop.IsCancellationRequested && e is RpcException or InvalidOperationException)
                {
                    // The call ended while the creates were sent (a write then fails, as Cancelled or as a complete call): the status the
                    // server ended it with is what the reader gets, as clientv3's Recv does.
                }

                end = await reading;
            }
            catch (RpcException e) when (!stop.IsCancellationRequested)
            {
                end = e.StatusCode == StatusCode.Unavailable ? e.StatusCode.ToString() : $"{e.StatusCode} ({e.Status.Detail})";
            }
            catch (Exception e) when (stop.IsCancellationRequested && e is OperationCanceledException or RpcException)
            {
                return;
            }

            if (end.Length == 0)
            {
                return;
            }

            lock (gate)
            {
                ends.Add(end);
            }

            if (end != nameof(StatusCode.Unavailable))
            {
                return;
            }

            // clientv3 waits a little before it dials again; this is its retry, not a synchronisation.
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Reads the call to its end: "" when a watch was cancelled (the stream is given up), otherwise how it ended.</summary>
    private async Task<string> ReadAsync(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call)
    {
        await foreach (var response in call.ResponseStream.ReadAllAsync(stop.Token))
        {
            if (!Take(response))
            {
                lock (gate)
                {
                    ends.Add($"watch {response.WatchId} cancelled: {response}");
                }

                return "";
            }
        }

        return "the stream ended with OK";
    }

    /// <summary>Records a response; false when it cancels its watch.</summary>
    private bool Take(WatchResponse response)
    {
        lock (gate)
        {
            var watch = watches[(int)response.WatchId];
            if (response.Canceled)
            {
                return false;
            }

            if (response.Created)
            {
                if (watch.Start == 0)
                {
                    watch.Start = watch.Next == 0 ? response.Header.Revision + 1 : watch.Next;
                    watch.Next = watch.Start;
                }

                return true;
            }

            if (response.Events.Count > 0)
            {
                var kept = response.Clone();
                kept.WatchId = 0;
                watch.Responses.Add(kept);
                watch.Next = response.Events[^1].Kv.ModRevision + 1;
            }

            return true;
        }
    }

    private sealed class Watched(WatchCreateRequest create)
    {
        public WatchCreateRequest Create { get; } = create;

        /// <summary>The revision it really started from, once created.</summary>
        public long Start { get; set; }

        /// <summary>The revision it resumes from: after the last event received (0 for a head watch not yet created).</summary>
        public long Next { get; set; } = create.StartRevision;

        public List<WatchResponse> Responses { get; } = [];
    }
}
