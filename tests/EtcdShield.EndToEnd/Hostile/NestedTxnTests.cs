using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A tenant hides a forbidden operation deep inside nested transactions, or nests them deeper than any parser
/// should follow, hoping the proxy's walk stops before the op (and lets it through unchecked or unsealed) or
/// overflows its stack.
/// </summary>
public sealed class NestedTxnTests(KnownAttacksFixture fixture) : IClassFixture<KnownAttacksFixture>
{
    [Theory]
    [InlineData(2)]
    [InlineData(45)]
    public async Task A_forbidden_delete_nested_deep_inside_allowed_txns_is_refused_and_nothing_is_deleted(int depth)
    {
        await PutAsAdminAsync("/outside/nested-victim", "keep-me");
        using var channel = fixture.TenantChannel();
        var kv = new KV.KVClient(channel);

        var innermost = new TxnRequest
        {
            Success =
            {
                new RequestOp { RequestPut = new PutRequest { Key = B("/tenant/nested"), Value = B("allowed") } },
                new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = B("/outside/nested-victim") } },
            },
        };
        var denial = await Assert.ThrowsAsync<RpcException>(() => kv.TxnAsync(Nest(innermost, depth)).ResponseAsync);

        Assert.Equal(StatusCode.PermissionDenied, denial.StatusCode);
        Assert.Contains("/outside/nested-victim", denial.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("keep-me", await StoredPlaintextAsync("/outside/nested-victim"));
        Assert.Null(await StoredAsync("/tenant/nested"));
    }

    [Fact]
    public async Task A_txn_nested_past_the_protobuf_recursion_limit_is_refused_without_reaching_etcd_and_the_proxy_keeps_serving()
    {
        using var channel = fixture.TenantChannel();
        var kv = new KV.KVClient(channel);
        var innermost = new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = B("/tenant/too-deep"), Value = B("x") } } } };

        // Google.Protobuf refuses messages nested more than 100 deep; each txn level is two (RequestOp, TxnRequest).
        // etcd itself would follow them; the proxy refuses rather than walk (and seal) what it cannot parse.
        var refusal = await Assert.ThrowsAsync<RpcException>(() => kv.TxnAsync(Nest(innermost, 400)).ResponseAsync);

        // What etcd's grpc-go server answers for a request it cannot unmarshal; no error is logged (the fixture
        // fails the class on any Error log).
        Assert.Equal(StatusCode.Internal, refusal.StatusCode);
        Assert.StartsWith("grpc: error unmarshalling request: ", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Null(await StoredAsync("/tenant/too-deep"));
        var put = await kv.PutAsync(new PutRequest { Key = B("/tenant/after-too-deep"), Value = B("served") });
        Assert.True(put.Header.Revision > 0);
    }

    private static TxnRequest Nest(TxnRequest innermost, int depth)
    {
        var txn = innermost;
        for (var level = 1; level < depth; level++)
        {
            txn = new TxnRequest { Success = { new RequestOp { RequestTxn = txn } } };
        }

        return txn;
    }

    private async Task PutAsAdminAsync(string key, string value)
    {
        using var channel = fixture.AdminChannel();
        await new KV.KVClient(channel).PutAsync(new PutRequest { Key = B(key), Value = B(value) });
    }

    private async Task<string?> StoredPlaintextAsync(string key)
    {
        using var channel = fixture.AdminChannel();
        var answer = await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = B(key) });
        return answer.Kvs.Count == 0 ? null : answer.Kvs[0].Value.ToStringUtf8();
    }

    private async Task<ByteString?> StoredAsync(string key)
    {
        using var channel = fixture.EtcdChannel();
        var answer = await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = B(key) });
        return answer.Kvs.Count == 0 ? null : answer.Kvs[0].Value;
    }

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);
}
