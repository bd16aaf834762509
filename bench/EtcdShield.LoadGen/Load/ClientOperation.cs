using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.LoadGen.Load;

/// <summary>What one client of a closed-loop workload does, one call at a time; each client has its own instance.</summary>
internal abstract class ClientOperation
{
    protected ClientOperation(KV.KVClient kv, KeySpace keys, int seed)
    {
        Kv = kv;
        Keys = keys;
        Random = new Random(seed);
    }

    protected KV.KVClient Kv { get; }

    protected KeySpace Keys { get; }

    protected Random Random { get; }

    public abstract Task ExecuteAsync(CallOptions options);

    public static ClientOperation Create(WorkloadKind kind, KV.KVClient kv, KeySpace keys, int client, int clients) => kind switch
    {
        WorkloadKind.Put => new PutOperation(kv, keys, client),
        WorkloadKind.RangeLinearizable => new RangeOperation(kv, keys, client, serializable: false),
        WorkloadKind.RangeSerializable => new RangeOperation(kv, keys, client, serializable: true),
        WorkloadKind.TxnCas => new CompareAndSwapOperation(kv, keys, client, clients),
        WorkloadKind.Mixed => new MixedOperation(kv, keys, client),
        WorkloadKind.TxnValueCompares => new TxnValueComparesOperation(kv, keys, client),
        WorkloadKind.TxnPuts => new TxnPutsOperation(kv, keys, client),
        WorkloadKind.RangeByValue => new RangeByValueOperation(kv, keys, client),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a closed-loop workload"),
    };

    protected ByteString RandomKey() => Keys[Random.Next(Keys.Count)];

    protected Task PutAsync(ByteString key, CallOptions options) =>
        Kv.PutAsync(new PutRequest { Key = key, Value = Keys.Value }, options).ResponseAsync;

    protected Task GetAsync(ByteString key, bool serializable, CallOptions options) =>
        Kv.RangeAsync(new RangeRequest { Key = key, Serializable = serializable }, options).ResponseAsync;
}

internal sealed class PutOperation(KV.KVClient kv, KeySpace keys, int seed) : ClientOperation(kv, keys, seed)
{
    public override Task ExecuteAsync(CallOptions options) => PutAsync(RandomKey(), options);
}

internal sealed class RangeOperation(KV.KVClient kv, KeySpace keys, int seed, bool serializable) : ClientOperation(kv, keys, seed)
{
    public override Task ExecuteAsync(CallOptions options) => GetAsync(RandomKey(), serializable, options);
}

/// <summary>90 % linearizable gets, 10 % puts: a read-mostly control plane.</summary>
internal sealed class MixedOperation(KV.KVClient kv, KeySpace keys, int seed) : ClientOperation(kv, keys, seed)
{
    public override Task ExecuteAsync(CallOptions options) =>
        Random.Next(10) == 0 ? PutAsync(RandomKey(), options) : GetAsync(RandomKey(), serializable: false, options);
}

/// <summary>
/// Kubernetes' GuaranteedUpdate: "if mod_revision(key) == the revision I read, put, else give me the current kv".
/// Each client updates its own share of the keys, so conflicts are the rare first-touch miss (the client starts
/// knowing no revision and learns it from the else branch), as in an apiserver whose watch cache is current.
/// </summary>
internal sealed class CompareAndSwapOperation : ClientOperation
{
    private readonly int[] _mine;
    private readonly long[] _knownRevision;

    public CompareAndSwapOperation(KV.KVClient kv, KeySpace keys, int client, int clients)
        : base(kv, keys, client)
    {
        _mine = [.. Enumerable.Range(0, keys.Count).Where(k => k % clients == client % Math.Min(clients, keys.Count))];
        _knownRevision = new long[_mine.Length];
    }

    public long Succeeded { get; private set; }

    public long Failed { get; private set; }

    public override async Task ExecuteAsync(CallOptions options)
    {
        var slot = Random.Next(_mine.Length);
        var key = Keys[_mine[slot]];
        var request = new TxnRequest
        {
            Compare =
            {
                new Compare
                {
                    Key = key,
                    Target = Compare.Types.CompareTarget.Mod,
                    Result = Compare.Types.CompareResult.Equal,
                    ModRevision = _knownRevision[slot],
                },
            },
            Success = { new RequestOp { RequestPut = new PutRequest { Key = key, Value = Keys.Value } } },
            Failure = { new RequestOp { RequestRange = new RangeRequest { Key = key } } },
        };
        var response = await Kv.TxnAsync(request, options).ResponseAsync.ConfigureAwait(false);
        if (response.Succeeded)
        {
            Succeeded++;
            _knownRevision[slot] = response.Header.Revision;
        }
        else
        {
            Failed++;
            var kvs = response.Responses[0].ResponseRange.Kvs;
            _knownRevision[slot] = kvs.Count > 0 ? kvs[0].ModRevision : 0;
        }
    }
}
