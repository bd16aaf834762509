using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// The same operations run twice on one etcd: through the encrypting proxy under one prefix, and straight
/// against etcd on plaintext under another. With keys made relative to their prefix and revisions removed,
/// what the proxy answers must equal what etcd answers on plaintext.
/// </summary>
internal sealed class Reference
{
    private readonly ShieldedEtcd _etcd;

    private Reference(ShieldedEtcd etcd, string name)
    {
        _etcd = etcd;
        var id = Guid.NewGuid().ToString("N")[..8];
        Encrypted = $"/{name}-{id}/enc/";
        Plain = $"/{name}-{id}/ref/";
    }

    /// <summary>Keys written through the proxy.</summary>
    public string Encrypted { get; }

    /// <summary>The same keys with the same values, written straight into etcd.</summary>
    public string Plain { get; }

    /// <summary>Writes every pair under both prefixes, in order, so that versions and creation order agree.</summary>
    public static async Task<Reference> SeedAsync(ShieldedEtcd etcd, string name, params (string Key, string Value)[] pairs)
    {
        var reference = new Reference(etcd, name);
        foreach (var (key, value) in pairs)
        {
            await reference.PutBothAsync(key, value);
        }

        return reference;
    }

    /// <summary>Like <see cref="SeedAsync"/> for many pairs, written in transactions of 50 puts to keep it quick.</summary>
    public static async Task<Reference> SeedManyAsync(ShieldedEtcd etcd, string name, params (string Key, string Value)[] pairs)
    {
        var reference = new Reference(etcd, name);
        foreach (var chunk in pairs.Chunk(50))
        {
            foreach (var (kv, prefix) in new[] { (etcd.ProxyKv, reference.Encrypted), (etcd.EtcdKv, reference.Plain) })
            {
                var txn = new TxnRequest();
                txn.Success.Add(chunk.Select(p => new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8(prefix + p.Key), Value = ByteString.CopyFromUtf8(p.Value) } }));
                await kv.TxnAsync(txn);
            }
        }

        return reference;
    }

    public async Task PutBothAsync(string key, string value)
    {
        await _etcd.ProxyKv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(Encrypted + key), Value = ByteString.CopyFromUtf8(value) });
        await _etcd.EtcdKv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(Plain + key), Value = ByteString.CopyFromUtf8(value) });
    }

    /// <summary>Runs <paramref name="build"/>'s request under each prefix and returns both answers, normalized.</summary>
    public async Task<(RangeResponse Proxy, RangeResponse Etcd)> RangeAsync(Func<string, RangeRequest> build) =>
        (Normalize(await _etcd.ProxyKv.RangeAsync(build(Encrypted)), Encrypted),
         Normalize(await _etcd.EtcdKv.RangeAsync(build(Plain)), Plain));

    public async Task<(TxnResponse Proxy, TxnResponse Etcd)> TxnAsync(Func<string, TxnRequest> build) =>
        (Normalize(await _etcd.ProxyKv.TxnAsync(build(Encrypted)), Encrypted),
         Normalize(await _etcd.EtcdKv.TxnAsync(build(Plain)), Plain));

    public async Task<(DeleteRangeResponse Proxy, DeleteRangeResponse Etcd)> DeleteRangeAsync(Func<string, DeleteRangeRequest> build) =>
        (Normalize(await _etcd.ProxyKv.DeleteRangeAsync(build(Encrypted)), Encrypted),
         Normalize(await _etcd.EtcdKv.DeleteRangeAsync(build(Plain)), Plain));

    public static ByteString Key(string text) => ByteString.CopyFromUtf8(text);

    private static RangeResponse Normalize(RangeResponse response, string prefix)
    {
        response.Header = null;
        foreach (var kv in response.Kvs)
        {
            Normalize(kv, prefix);
        }

        return response;
    }

    private static TxnResponse Normalize(TxnResponse response, string prefix)
    {
        response.Header = null;
        foreach (var op in response.Responses)
        {
            switch (op.ResponseCase)
            {
                case ResponseOp.ResponseOneofCase.ResponseRange:
                    Normalize(op.ResponseRange, prefix);
                    break;
                case ResponseOp.ResponseOneofCase.ResponsePut:
                    op.ResponsePut.Header = null;
                    Normalize(op.ResponsePut.PrevKv, prefix);
                    break;
                case ResponseOp.ResponseOneofCase.ResponseDeleteRange:
                    Normalize(op.ResponseDeleteRange, prefix);
                    break;
                case ResponseOp.ResponseOneofCase.ResponseTxn:
                    Normalize(op.ResponseTxn, prefix);
                    break;
            }
        }

        return response;
    }

    private static DeleteRangeResponse Normalize(DeleteRangeResponse response, string prefix)
    {
        response.Header = null;
        foreach (var kv in response.PrevKvs)
        {
            Normalize(kv, prefix);
        }

        return response;
    }

    private static void Normalize(KeyValue? kv, string prefix)
    {
        if (kv is null)
        {
            return;
        }

        var key = kv.Key.ToStringUtf8();
        Assert.StartsWith(prefix, key, StringComparison.Ordinal);
        kv.Key = ByteString.CopyFromUtf8(key[prefix.Length..]);
        kv.CreateRevision = 0;
        kv.ModRevision = 0;
    }
}
