using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Authorization;

/// <summary>
/// Puts and gets in a loop on one open connection while a test changes the proxy's configuration underneath,
/// recording every failure: a reload must not fail a single request.
/// </summary>
internal sealed class LiveTraffic : IAsyncDisposable
{
    private readonly KV.KVClient kv;
    private readonly string prefix;
    private readonly CancellationTokenSource stop = new();
    private readonly List<RpcException> failures = [];
    private readonly Task loop;
    private int completed;

    private LiveTraffic(KV.KVClient kv, string prefix)
    {
        this.kv = kv;
        this.prefix = prefix;
        loop = Task.Run(RunAsync);
    }

    public int Completed => Volatile.Read(ref completed);

    public static LiveTraffic Start(KV.KVClient kv, string prefix) => new(kv, prefix);

    /// <summary>Waits until at least <paramref name="count"/> requests have completed (successfully or not).</summary>
    public Task WaitForRequestsAsync(int count) =>
        Eventually.HoldsAsync(() => Task.FromResult(Completed), completed => completed >= count, TimeSpan.FromSeconds(30));

    public async Task<IReadOnlyList<RpcException>> StopAsync()
    {
        await stop.CancelAsync();
        await loop;
        lock (failures)
        {
            return failures.ToList();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!stop.IsCancellationRequested)
        {
            await StopAsync();
        }

        stop.Dispose();
    }

    private async Task RunAsync()
    {
        var i = 0;
        while (!stop.IsCancellationRequested)
        {
            var key = ByteString.CopyFromUtf8($"{prefix}{i++ % 10}");
            try
            {
                await kv.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("live") });
                await kv.RangeAsync(new RangeRequest { Key = key });
            }
            catch (RpcException e)
            {
                lock (failures)
                {
                    failures.Add(e);
                }
            }

            Interlocked.Increment(ref completed);
        }
    }
}
