using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.Tests.Encryption;

/// <summary>etcd 3.4's checkTxnRequest and checkIntervals, held to etcd's answers case by case.</summary>
public sealed class TxnRequestCheckTests
{
    private const int Max = 128;

    [Fact]
    public void A_level_at_the_limit_passes_and_one_more_compare_success_or_failure_op_is_too_many()
    {
        Assert.Null(Refusal(Txn(compares: Max, success: Max, failure: Max)));

        Assert.Equal(TxnRequestCheck.TooManyOps.Detail, Refusal(Txn(compares: Max + 1)));
        Assert.Equal(TxnRequestCheck.TooManyOps.Detail, Refusal(Txn(success: Max + 1)));
        Assert.Equal(TxnRequestCheck.TooManyOps.Detail, Refusal(Txn(failure: Max + 1)));
    }

    [Fact]
    public void A_nested_txn_gets_what_its_parent_leaves_of_the_budget_as_in_etcd_3_4()
    {
        var fits = Txn(compares: 100);
        fits.Success.Add(new RequestOp { RequestTxn = Txn(compares: 28) });
        var over = Txn(compares: 100);
        over.Failure.Add(new RequestOp { RequestTxn = Txn(success: 29) });

        Assert.Null(Refusal(fits));
        Assert.True(TxnRequestCheck.FitsOpBudget(fits, Max));
        Assert.Equal(TxnRequestCheck.TooManyOps.Detail, Refusal(over));
        Assert.False(TxnRequestCheck.FitsOpBudget(over, Max));
    }

    [Fact]
    public void Sixty_five_thousand_compares_are_refused_on_their_count_alone()
    {
        var txn = new TxnRequest();
        txn.Compare.Add(Enumerable.Range(0, 65_000).Select(_ => new Compare { Key = Utf8("k"), Target = CompareTarget.Value, Value = Utf8("v") }));

        var refusal = Assert.Throws<RpcException>(() => TxnRequestCheck.Check(txn, Max));

        Assert.Equal(StatusCode.InvalidArgument, refusal.StatusCode);
        Assert.Equal("etcdserver: too many operations in txn request", refusal.Status.Detail);
    }

    [Fact]
    public void Empty_keys_empty_ops_and_contradictory_puts_get_etcds_messages()
    {
        Assert.Equal("etcdserver: key is not provided", Refusal(new TxnRequest { Compare = { new Compare() } }));
        Assert.Equal("etcdserver: key is not provided", Refusal(new TxnRequest { Success = { new RequestOp { RequestRange = new RangeRequest() } } }));
        Assert.Equal("etcdserver: key is not provided", Refusal(new TxnRequest { Failure = { new RequestOp { RequestDeleteRange = new DeleteRangeRequest() } } }));
        Assert.Equal("etcdserver: key not found", Refusal(new TxnRequest { Success = { new RequestOp() } }));
        Assert.Equal("etcdserver: value is provided", Refusal(new TxnRequest { Success = { PutOp("k", ignoreValue: true, value: "v") } }));
        Assert.Equal("etcdserver: lease is provided", Refusal(new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = Utf8("k"), IgnoreLease = true, Lease = 7 } } } }));
    }

    [Fact]
    public void A_key_put_twice_or_put_and_deleted_in_one_branch_is_a_duplicate()
    {
        Assert.Equal(TxnRequestCheck.DuplicateKey.Detail, Refusal(new TxnRequest { Success = { PutOp("k"), PutOp("k") } }));
        Assert.Equal(TxnRequestCheck.DuplicateKey.Detail, Refusal(new TxnRequest { Failure = { DeleteOp("a", "m"), PutOp("k") } }));
        Assert.Equal(TxnRequestCheck.DuplicateKey.Detail, Refusal(new TxnRequest { Success = { PutOp("k"), DeleteOp("k") } }));
        Assert.Equal(TxnRequestCheck.DuplicateKey.Detail, Refusal(new TxnRequest { Success = { Nested(then: [PutOp("k")]), PutOp("k") } }));
        Assert.Equal(TxnRequestCheck.DuplicateKey.Detail, Refusal(new TxnRequest { Success = { DeleteOp("a", "z"), Nested(then: [PutOp("k")]) } }));
    }

    [Fact]
    public void What_cannot_run_together_is_no_duplicate()
    {
        // The two branches of one txn, and the two branches of a nested txn, never both run.
        Assert.Null(Refusal(new TxnRequest { Success = { PutOp("k") }, Failure = { PutOp("k") } }));
        Assert.Null(Refusal(new TxnRequest { Success = { Nested(then: [PutOp("k")], otherwise: [PutOp("k")]) } }));
        // Two deletes may overlap; a range_end at or before the key, or "\0", covers nothing in etcd's interval tree.
        Assert.Null(Refusal(new TxnRequest { Success = { DeleteOp("a", "z"), DeleteOp("b", "c") } }));
        Assert.Null(Refusal(new TxnRequest { Success = { DeleteOp("m", "a"), PutOp("k") } }));
        Assert.Null(Refusal(new TxnRequest { Success = { DeleteOp("a", "\0"), PutOp("k") } }));
        // A put just outside a deleted range.
        Assert.Null(Refusal(new TxnRequest { Success = { DeleteOp("a", "k"), PutOp("k") } }));
        // etcd checks a nested txn's puts against the deletes of its level and of the nested txns before it only.
        Assert.Null(Refusal(new TxnRequest { Success = { Nested(then: [PutOp("k")]), Nested(then: [DeleteOp("a", "z")]) } }));
        Assert.Equal(TxnRequestCheck.DuplicateKey.Detail, Refusal(new TxnRequest { Success = { Nested(then: [DeleteOp("a", "z")]), Nested(then: [PutOp("k")]) } }));
    }

    [Fact]
    public void Many_deletes_and_puts_are_checked_against_every_interval()
    {
        // Disjoint deleted ranges [k000a, k000b), [k001a, k001b), ... joined and split in every order.
        var ops = Enumerable.Range(0, Max).Select(i => DeleteOp($"k{i:D3}a", $"k{i:D3}b")).Reverse().ToList();
        var clear = new TxnRequest();
        clear.Success.Add(ops.Take(Max - 1));
        clear.Success.Add(PutOp("k050b"));
        var hit = new TxnRequest();
        hit.Success.Add(ops.Take(Max - 1));
        hit.Success.Add(PutOp("k050a5"));

        Assert.Null(Refusal(clear));
        Assert.Equal(TxnRequestCheck.DuplicateKey.Detail, Refusal(hit));
    }

    [Fact]
    public void Only_a_txn_of_ranges_alone_is_read_only_as_etcd_decides_it()
    {
        Assert.True(TxnRequestCheck.IsReadOnly(new TxnRequest { Success = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8("k") } } } }));
        Assert.True(TxnRequestCheck.IsReadOnly(Txn(compares: 3)));
        Assert.False(TxnRequestCheck.IsReadOnly(new TxnRequest { Failure = { PutOp("k") } }));
        Assert.False(TxnRequestCheck.IsReadOnly(new TxnRequest { Success = { Nested(then: []) } }));
    }

    private static string? Refusal(TxnRequest txn)
    {
        try
        {
            TxnRequestCheck.Check(txn, Max);
            return null;
        }
        catch (RpcException e)
        {
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            return e.Status.Detail;
        }
    }

    private static TxnRequest Txn(int compares = 0, int success = 0, int failure = 0)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(Enumerable.Range(0, compares).Select(i => new Compare { Key = Utf8($"c{i}"), Target = CompareTarget.Version }));
        txn.Success.Add(Enumerable.Range(0, success).Select(i => new RequestOp { RequestRange = new RangeRequest { Key = Utf8($"s{i}") } }));
        txn.Failure.Add(Enumerable.Range(0, failure).Select(i => new RequestOp { RequestRange = new RangeRequest { Key = Utf8($"f{i}") } }));
        return txn;
    }

    private static RequestOp PutOp(string key, bool ignoreValue = false, string value = "") =>
        new() { RequestPut = new PutRequest { Key = Utf8(key), IgnoreValue = ignoreValue, Value = Utf8(value) } };

    private static RequestOp DeleteOp(string key, string rangeEnd = "") =>
        new() { RequestDeleteRange = new DeleteRangeRequest { Key = Utf8(key), RangeEnd = Utf8(rangeEnd) } };

    private static RequestOp Nested(RequestOp[] then, RequestOp[]? otherwise = null)
    {
        var txn = new TxnRequest();
        txn.Success.Add(then);
        txn.Failure.Add(otherwise ?? []);
        return new RequestOp { RequestTxn = txn };
    }

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);
}
