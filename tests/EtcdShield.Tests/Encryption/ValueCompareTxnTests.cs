using EtcdShield.Protocol.Etcdserverpb;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;
using static EtcdShield.Tests.Encryption.GuardedTxnTests;
using static EtcdShield.Tests.Encryption.ValueHandlerBed;

namespace EtcdShield.Tests.Encryption;

/// <summary>
/// Value compares through the Txn handler against the in-memory etcd, which holds only ciphertext: each is decided
/// on plaintext as etcd would decide it, and etcd is sent no value compare at all, only the outcome and its guards.
/// </summary>
public sealed class ValueCompareTxnTests : IDisposable
{
    private readonly ValueHandlerBed _bed = new();

    public void Dispose() => _bed.Dispose();

    [Theory]
    [InlineData(CompareResult.Equal, "m", true)]
    [InlineData(CompareResult.Equal, "a", false)]
    [InlineData(CompareResult.NotEqual, "a", true)]
    [InlineData(CompareResult.NotEqual, "m", false)]
    [InlineData(CompareResult.Greater, "a", true)]
    [InlineData(CompareResult.Greater, "m", false)]
    [InlineData(CompareResult.Greater, "z", false)]
    [InlineData(CompareResult.Less, "z", true)]
    [InlineData(CompareResult.Less, "m", false)]
    [InlineData(CompareResult.Less, "a", false)]
    public async Task A_value_compare_is_decided_on_the_plaintext(CompareResult result, string against, bool holds)
    {
        var read = _bed.Store("/k", "m");

        var response = await TxnAsync(Branches(ValueCompare("/k", "", result, against)));

        Assert.Equal(holds, response.Succeeded);
        Assert.Equal(holds ? "success" : "failure", _bed.Stored("/out"));
        var txns = _bed.Etcd.SentTo<TxnRequest>("KV/Txn");
        Assert.Equal(2, txns.Count);
        // The read: /k alone, at one revision.
        Assert.Equal(new RangeRequest { Key = Utf8("/k"), RangeEnd = Utf8("/k\0") }, Assert.Single(txns[0].Success).RequestRange);
        // The commit: guarded on /k as read; the value compare replaced by its outcome (none, or one that cannot hold).
        var commit = txns[1];
        Assert.Equal(new Compare { Key = Utf8("/k"), Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = read }, Assert.Single(commit.Compare));
        var decided = Assert.Single(commit.Success).RequestTxn;
        Assert.Equal(
            holds ? [] : [new Compare { Key = Utf8("/k"), Target = CompareTarget.Version, Result = CompareResult.Less, Version = 0 }],
            decided.Compare);
        // Both branches went to etcd sealed.
        var put = decided.Success[0].RequestPut;
        Assert.NotEqual(Utf8("success"), put.Value);
        Assert.Equal("success", _bed.Open(put.Key, put.Value));
    }

    [Fact]
    public async Task A_value_compare_on_a_missing_key_is_false_whatever_the_result_and_guarded_on_its_absence()
    {
        var response = await TxnAsync(Branches(ValueCompare("/none", "", CompareResult.NotEqual, "x")));

        Assert.False(response.Succeeded);
        Assert.Equal("failure", _bed.Stored("/out"));
        var commit = _bed.Etcd.SentTo<TxnRequest>("KV/Txn")[1];
        Assert.Equal(new Compare { Key = Utf8("/none"), Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = 0 }, Assert.Single(commit.Compare));
    }

    [Theory]
    [InlineData(CompareResult.Greater, "a", true)]
    [InlineData(CompareResult.Greater, "b", false)]
    [InlineData(CompareResult.Less, "d", true)]
    [InlineData(CompareResult.Less, "c", false)]
    [InlineData(CompareResult.NotEqual, "x", true)]
    [InlineData(CompareResult.NotEqual, "c", false)]
    [InlineData(CompareResult.Equal, "b", false)]
    public async Task A_value_compare_on_a_range_holds_only_when_every_key_in_it_satisfies_it(CompareResult result, string against, bool holds)
    {
        _bed.Store("/r/1", "b");
        _bed.Store("/r/2", "c");
        _bed.Store("/s", "a");

        var response = await TxnAsync(Branches(ValueCompare("/r/", "/r0", result, against)));

        Assert.Equal(holds, response.Succeeded);
        Assert.Equal(holds ? "success" : "failure", _bed.Stored("/out"));
    }

    [Fact]
    public async Task A_value_compare_on_an_empty_range_is_false()
    {
        _bed.Store("/s", "a");

        var response = await TxnAsync(Branches(ValueCompare("/r/", "/r0", CompareResult.NotEqual, "x")));

        Assert.False(response.Succeeded);
    }

    [Fact]
    public async Task Other_compares_next_to_a_value_compare_are_left_to_etcd()
    {
        _bed.Store("/k", "m");
        var txn = Branches(ValueCompare("/k", "", CompareResult.Equal, "m"));
        txn.Compare.Add(new Compare { Key = Utf8("/k"), Target = CompareTarget.Version, Result = CompareResult.Equal, Version = 2 });

        var response = await TxnAsync(txn);

        // The value holds, but /k is at version 1: etcd's own compare decides, and it is false.
        Assert.False(response.Succeeded);
        var decided = _bed.Etcd.SentTo<TxnRequest>("KV/Txn")[1].Success[0].RequestTxn;
        Assert.Equal([txn.Compare[1]], decided.Compare);
    }

    [Fact]
    public async Task A_value_compare_in_a_nested_txn_is_decided_and_its_branch_answered_in_plaintext()
    {
        _bed.Store("/k", "m");
        _bed.Store("/read", "secret");
        var txn = new TxnRequest
        {
            Compare = { new Compare { Key = Utf8("/k"), Target = CompareTarget.Version, Result = CompareResult.Equal, Version = 1 } },
            Success =
            {
                new RequestOp
                {
                    RequestTxn = new TxnRequest
                    {
                        Compare = { ValueCompare("/k", "", CompareResult.Less, "n") },
                        Success = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8("/read") } } },
                        Failure = { PutOp("/out", "nested failure") },
                    },
                },
            },
        };

        var response = await TxnAsync(txn);

        Assert.True(response.Succeeded);
        var nested = response.Responses.Single().ResponseTxn;
        Assert.True(nested.Succeeded);
        Assert.Equal("secret", nested.Responses.Single().ResponseRange.Kvs.Single().Value.ToStringUtf8());
        Assert.Null(_bed.Etcd.Store.Get("/out"));
        Assert.Equal(_bed.Etcd.Store.Revision, response.Header.Revision);
    }

    private Task<TxnResponse> TxnAsync(TxnRequest txn) => _bed.CallAsync<TxnResponse>(_bed.Txn, "KV/Txn", txn);

    private static TxnRequest Branches(Compare compare) => new()
    {
        Compare = { compare },
        Success = { PutOp("/out", "success") },
        Failure = { PutOp("/out", "failure") },
    };
}
