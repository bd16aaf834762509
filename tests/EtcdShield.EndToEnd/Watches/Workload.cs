using System.Globalization;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// Writes through the proxy under one prefix, from several writers at once: puts, deletes of single keys and of a
/// range, multi-key transactions, and keys on a lease that is then revoked (deleting them as expiry would). Seeded,
/// so a failing run can be told apart from another by its seed; which writer wins a revision still varies.
/// </summary>
internal sealed class Workload(GrpcChannel proxy, string prefix)
{
    /// <summary>The keys the writers touch, relative to the prefix.</summary>
    public static readonly string[] Keys = ["k1", "k2", "dir/a", "dir/b", "dir/c", "a1", "b2", "l1", "z1", "z2"];

    private readonly KV.KVClient kv = new(proxy);
    private readonly Lease.LeaseClient leases = new(proxy);
    private int sequence;

    public ByteString Key(string relative) => ByteString.CopyFromUtf8(prefix + relative);

    public async Task<long> PutAsync(string relative, string value) =>
        (await kv.PutAsync(new PutRequest { Key = Key(relative), Value = ByteString.CopyFromUtf8(value) })).Header.Revision;

    /// <summary>Runs <paramref name="writers"/> writers of <paramref name="operations"/> operations each, concurrently.</summary>
    public Task RunAsync(int writers, int operations, int seed) =>
        Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(() => WriterAsync(new Random(seed + w), operations))));

    /// <summary>In one transaction each: puts <paramref name="keys"/>, deletes them, puts them again (values "end").</summary>
    /// <returns>The revisions of the delete and of the last put.</returns>
    public async Task<(long Deleted, long Put)> CloseAsync(IEnumerable<ByteString> keys)
    {
        var distinct = keys.Distinct().ToList();
        TxnRequest Txn(bool put)
        {
            var txn = new TxnRequest();
            txn.Success.AddRange(distinct.Select(k => put
                ? new RequestOp { RequestPut = new PutRequest { Key = k, Value = ByteString.CopyFromUtf8("end") } }
                : new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = k } }));
            return txn;
        }

        await kv.TxnAsync(Txn(put: true));
        var deleted = (await kv.TxnAsync(Txn(put: false))).Header.Revision;
        var put = (await kv.TxnAsync(Txn(put: true))).Header.Revision;
        return (deleted, put);
    }

    private async Task WriterAsync(Random random, int operations)
    {
        for (var i = 0; i < operations; i++)
        {
            var key = Keys[random.Next(Keys.Length)];
            switch (random.Next(10))
            {
                case < 5:
                    await PutAsync(key, Value());
                    break;
                case 5:
                    await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Key(key), PrevKv = random.Next(2) == 0 });
                    break;
                case 6:
                    await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Key("dir/"), RangeEnd = Key("dir0") });
                    break;
                case 7 or 8:
                    var txn = new TxnRequest();
                    foreach (var other in Keys.OrderBy(_ => random.Next()).Take(3))
                    {
                        txn.Success.Add(random.Next(3) == 0
                            ? new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = Key(other) } }
                            : new RequestOp { RequestPut = new PutRequest { Key = Key(other), Value = ByteString.CopyFromUtf8(Value()) } });
                    }

                    await kv.TxnAsync(txn);
                    break;
                default:
                    var lease = await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
                    await kv.PutAsync(new PutRequest { Key = Key("l1"), Value = ByteString.CopyFromUtf8(Value()), Lease = lease.ID });
                    await kv.PutAsync(new PutRequest { Key = Key("dir/c"), Value = ByteString.CopyFromUtf8(Value()), Lease = lease.ID });
                    await leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease.ID });
                    break;
            }
        }
    }

    private string Value() => "v" + Interlocked.Increment(ref sequence).ToString(CultureInfo.InvariantCulture);
}
