using EtcdShield.Protocol.Etcdserverpb;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;
using static EtcdShield.Protocol.Etcdserverpb.RangeRequest.Types;
using static EtcdShield.Tests.Encryption.GuardedTxnTests;
using static EtcdShield.Tests.Encryption.ValueHandlerBed;

namespace EtcdShield.Tests.Encryption;

/// <summary>
/// Txns through the Txn handler: puts sealed in both branches and nested txns, and etcd's answers opened op by op
/// against the branch etcd actually ran, whose ops need not look like the other branch's.
/// </summary>
public sealed class TxnValuesTests : IDisposable
{
    private readonly ValueHandlerBed _bed = new();

    public void Dispose() => _bed.Dispose();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task The_branch_etcd_ran_is_opened_op_by_op(bool succeeds)
    {
        _bed.Store("/a", "a-value");
        _bed.Store("/b", "b-old");
        _bed.Store("/c/1", "c1");
        _bed.Store("/c/2", "c2");
        var txn = new TxnRequest
        {
            Compare = { new Compare { Key = Utf8("/a"), Target = CompareTarget.Version, Result = CompareResult.Equal, Version = succeeds ? 1 : 9 } },
            Success =
            {
                new RequestOp { RequestRange = new RangeRequest { Key = Utf8("/a") } },
                new RequestOp { RequestPut = new PutRequest { Key = Utf8("/b"), Value = Utf8("b-new"), PrevKv = true } },
                new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = Utf8("/c/"), RangeEnd = Utf8("/c0"), PrevKv = true } },
            },
            // The other branch in another order, so that matching a response to the wrong branch's op leaves it sealed.
            Failure =
            {
                new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = Utf8("/c/"), RangeEnd = Utf8("/c0"), PrevKv = true } },
                new RequestOp { RequestPut = new PutRequest { Key = Utf8("/b"), Value = Utf8("b-new"), PrevKv = true } },
                new RequestOp { RequestRange = new RangeRequest { Key = Utf8("/c/"), RangeEnd = Utf8("/c0"), SortTarget = SortTarget.Value, SortOrder = SortOrder.Descend } },
            },
        };

        var response = await TxnAsync(txn);

        Assert.Equal(succeeds, response.Succeeded);
        var answers = response.Responses.Select(Describe).ToList();
        Assert.Equal(
            succeeds
                ? ["range /a=a-value", "put prev /b=b-old", "delete 2 /c/1=c1 /c/2=c2"]
                : ["delete 2 /c/1=c1 /c/2=c2", "put prev /b=b-old", "range"],
            answers);
        Assert.Equal("b-new", _bed.Stored("/b"));
        var sent = Assert.Single(_bed.Etcd.SentTo<TxnRequest>("KV/Txn"));
        Assert.All(new[] { sent.Success[1].RequestPut, sent.Failure[1].RequestPut }, put => Assert.Equal("b-new", _bed.Open(put.Key, put.Value)));
        Assert.NotEqual(Utf8("b-new"), sent.Success[1].RequestPut.Value);
    }

    [Fact]
    public async Task A_value_sorted_range_in_a_txn_is_widened_for_etcd_and_sorted_on_plaintext()
    {
        _bed.Store("/r/1", "b");
        _bed.Store("/r/2", "c");
        _bed.Store("/r/3", "a");
        var txn = new TxnRequest
        {
            Success = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8("/r/"), RangeEnd = Utf8("/r0"), SortTarget = SortTarget.Value, SortOrder = SortOrder.Descend, Limit = 2 } } },
        };

        var response = await TxnAsync(txn);

        var range = response.Responses.Single().ResponseRange;
        Assert.Equal(["c", "b"], range.Kvs.Select(kv => kv.Value.ToStringUtf8()));
        Assert.Equal((3L, true), (range.Count, range.More));
        var sent = Assert.Single(_bed.Etcd.SentTo<TxnRequest>("KV/Txn")).Success.Single().RequestRange;
        Assert.Equal((0L, SortOrder.None, SortTarget.Key), (sent.Limit, sent.SortOrder, sent.SortTarget));
    }

    [Fact]
    public async Task Nested_txns_are_sealed_and_opened_on_the_branches_etcd_chose_at_every_level()
    {
        _bed.Store("/a", "a-value");
        var txn = new TxnRequest
        {
            Success =
            {
                PutOp("/top", "top-value"),
                new RequestOp
                {
                    RequestTxn = new TxnRequest
                    {
                        Compare = { new Compare { Key = Utf8("/a"), Target = CompareTarget.Version, Result = CompareResult.Greater, Version = 5 } },
                        Success = { PutOp("/inner", "then") },
                        Failure =
                        {
                            new RequestOp { RequestRange = new RangeRequest { Key = Utf8("/a") } },
                            new RequestOp
                            {
                                RequestTxn = new TxnRequest
                                {
                                    Success = { new RequestOp { RequestPut = new PutRequest { Key = Utf8("/a"), Value = Utf8("deep"), PrevKv = true } } },
                                },
                            },
                        },
                    },
                },
            },
        };

        var response = await TxnAsync(txn);

        var nested = response.Responses[1].ResponseTxn;
        Assert.False(nested.Succeeded);
        Assert.Equal("range /a=a-value", Describe(nested.Responses[0]));
        Assert.Equal("put prev /a=a-value", Describe(nested.Responses[1].ResponseTxn.Responses[0]));
        Assert.Equal(("top-value", "deep"), (_bed.Stored("/top"), _bed.Stored("/a")));
        Assert.Null(_bed.Etcd.Store.Get("/inner"));
        var sent = Assert.Single(_bed.Etcd.SentTo<TxnRequest>("KV/Txn"));
        var thenPut = sent.Success[1].RequestTxn.Success[0].RequestPut;
        Assert.Equal("then", _bed.Open(thenPut.Key, thenPut.Value));
    }

    private Task<TxnResponse> TxnAsync(TxnRequest txn) => _bed.CallAsync<TxnResponse>(_bed.Txn, "KV/Txn", txn);

    private static string Describe(ResponseOp op) => op.ResponseCase switch
    {
        ResponseOp.ResponseOneofCase.ResponseRange => string.Join(' ', ["range", .. op.ResponseRange.Kvs.Select(kv => $"{kv.Key.ToStringUtf8()}={kv.Value.ToStringUtf8()}")]),
        ResponseOp.ResponseOneofCase.ResponsePut => op.ResponsePut.PrevKv is { } prev ? $"put prev {prev.Key.ToStringUtf8()}={prev.Value.ToStringUtf8()}" : "put",
        ResponseOp.ResponseOneofCase.ResponseDeleteRange => string.Join(' ', [$"delete {op.ResponseDeleteRange.Deleted}", .. op.ResponseDeleteRange.PrevKvs.Select(kv => $"{kv.Key.ToStringUtf8()}={kv.Value.ToStringUtf8()}")]),
        _ => op.ResponseCase.ToString(),
    };
}
