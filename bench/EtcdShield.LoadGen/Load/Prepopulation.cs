using EtcdShield.Protocol.Etcdserverpb;

namespace EtcdShield.LoadGen.Load;

/// <summary>Writes every key of a key space once, through the target, before anything reads it.</summary>
internal static class Prepopulation
{
    public static async Task RunAsync(EtcdConnections connections, KeySpace keys, int clients)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var writers = Math.Max(1, Math.Min(clients, keys.Count));
        await Task.WhenAll(Enumerable.Range(0, writers).Select(async w =>
        {
            for (var k = w; k < keys.Count; k += writers)
            {
                await connections.Kv(w).PutAsync(
                    new PutRequest { Key = keys[k], Value = keys.Value },
                    deadline: DateTime.UtcNow.AddSeconds(30),
                    cancellationToken: timeout.Token).ResponseAsync.ConfigureAwait(false);
            }
        })).ConfigureAwait(false);
    }
}
