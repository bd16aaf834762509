using EtcdShield.Protocol.Etcdserverpb;
using static EtcdShield.EndToEnd.Encryption.Reference;
using static EtcdShield.Protocol.Etcdserverpb.RangeRequest.Types;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// Every read path returns plaintext, and answers exactly what etcd answers for the same data stored in
/// plaintext: ranges with limits, keys_only, count_only and sorts (by value too, which the proxy has to do
/// itself), prev_kv of Put and DeleteRange, and every response inside a (nested) Txn.
/// </summary>
public sealed class ReadPathTests(EncryptingProxy etcd) : IClassFixture<EncryptingProxy>
{
    /// <summary>Values whose byte order differs from key order: a duplicate, an empty value, upper case and UTF-8.</summary>
    private static readonly (string Key, string Value)[] Data =
    [
        ("a", "m"),
        ("b", "b"),
        ("c", "zeta"),
        ("d", ""),
        ("e", "b"),
        ("f", "é"),
        ("g", "B"),
        ("h", "ba"),
    ];

    /// <summary>Sort orders, limits around the number of keys, keys_only, and a revision filter that keeps every key
    /// but changes which keys etcd sorts when no order is given (etcd then sorts all of them, not the first limit + 1).</summary>
    public static TheoryData<SortOrder, long, bool, bool> ValueSorts()
    {
        var data = new TheoryData<SortOrder, long, bool, bool>();
        foreach (var order in new[] { SortOrder.None, SortOrder.Ascend, SortOrder.Descend })
        {
            foreach (var limit in new long[] { 0, 1, 3, 7, 8, 20 })
            {
                data.Add(order, limit, false, false);
            }

            data.Add(order, 3, true, false);
            data.Add(order, 3, false, true);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ValueSorts))]
    public async Task A_range_sorted_by_value_answers_as_etcd_does_on_plaintext(SortOrder order, long limit, bool keysOnly, bool revisionFilter)
    {
        var reference = await Reference.SeedAsync(etcd, "sort", Data);

        var (proxy, plain) = await reference.RangeAsync(prefix => new RangeRequest
        {
            Key = Key(prefix),
            RangeEnd = Key(WritePathTests.PrefixEnd(prefix)),
            SortTarget = SortTarget.Value,
            SortOrder = order,
            Limit = limit,
            KeysOnly = keysOnly,
            MinModRevision = revisionFilter ? 1 : 0,
        });

        Assert.Equal(plain, proxy);
    }

    [Theory]
    [InlineData(SortTarget.Key, SortOrder.Descend, 3)]
    [InlineData(SortTarget.Version, SortOrder.Ascend, 4)]
    [InlineData(SortTarget.Create, SortOrder.Descend, 2)]
    [InlineData(SortTarget.Mod, SortOrder.Ascend, 0)]
    public async Task A_range_sorted_by_anything_else_answers_as_etcd_does_on_plaintext(SortTarget target, SortOrder order, long limit)
    {
        var reference = await Reference.SeedAsync(etcd, "sort-other", Data);
        await reference.PutBothAsync("b", "b-updated");

        var (proxy, plain) = await reference.RangeAsync(prefix => new RangeRequest
        {
            Key = Key(prefix),
            RangeEnd = Key(WritePathTests.PrefixEnd(prefix)),
            SortTarget = target,
            SortOrder = order,
            Limit = limit,
        });

        Assert.Equal(plain, proxy);
    }

    [Fact]
    public async Task A_range_with_a_limit_returns_plaintext_with_the_count_and_more_etcd_gives()
    {
        var reference = await Reference.SeedAsync(etcd, "limit", Data);

        var (proxy, plain) = await reference.RangeAsync(prefix => new RangeRequest { Key = Key(prefix), RangeEnd = Key(WritePathTests.PrefixEnd(prefix)), Limit = 3 });

        Assert.Equal(plain, proxy);
        Assert.Equal(["m", "b", "zeta"], proxy.Kvs.Select(kv => kv.Value.ToStringUtf8()));
        Assert.True(proxy.More);
        Assert.Equal(Data.Length, proxy.Count);
    }

    [Theory]
    [InlineData(true, false, SortTarget.Key)]
    [InlineData(false, true, SortTarget.Key)]
    [InlineData(false, true, SortTarget.Value)]
    [InlineData(true, true, SortTarget.Value)]
    public async Task Keys_only_and_count_only_ranges_answer_as_etcd_does(bool keysOnly, bool countOnly, SortTarget target)
    {
        var reference = await Reference.SeedAsync(etcd, "only", Data);

        var (proxy, plain) = await reference.RangeAsync(prefix => new RangeRequest
        {
            Key = Key(prefix),
            RangeEnd = Key(WritePathTests.PrefixEnd(prefix)),
            KeysOnly = keysOnly,
            CountOnly = countOnly,
            SortTarget = target,
            Limit = 2,
        });

        Assert.Equal(plain, proxy);
        Assert.All(proxy.Kvs, kv => Assert.True(kv.Value.IsEmpty));
    }

    [Fact]
    public async Task Put_prev_kv_returns_the_previous_plaintext()
    {
        var key = ShieldedEtcd.NewPrefix("put-prev") + "k";
        await etcd.PutAsync(key, "previous-value");

        var put = await etcd.PutAsync(key, "next-value", prevKv: true);
        var first = await etcd.PutAsync(key + "-new", "first-value", prevKv: true);

        Assert.Equal("previous-value", put.PrevKv.Value.ToStringUtf8());
        Assert.Equal(key, put.PrevKv.Key.ToStringUtf8());
        Assert.Null(first.PrevKv);
    }

    [Fact]
    public async Task Delete_range_prev_kvs_return_the_deleted_plaintext_as_etcd_does()
    {
        var reference = await Reference.SeedAsync(etcd, "delete", Data);

        var (proxy, plain) = await reference.DeleteRangeAsync(prefix => new DeleteRangeRequest { Key = Key(prefix + "b"), RangeEnd = Key(prefix + "f"), PrevKv = true });

        Assert.Equal(plain, proxy);
        Assert.Equal(4, proxy.Deleted);
        Assert.Equal(["b", "zeta", "", "b"], proxy.PrevKvs.Select(kv => kv.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task Every_response_inside_a_nested_txn_is_plaintext_as_etcd_answers_it()
    {
        var reference = await Reference.SeedAsync(etcd, "txn-read", Data);

        var (proxy, plain) = await reference.TxnAsync(prefix => new TxnRequest
        {
            Compare = { new Compare { Key = Key(prefix + "a"), Target = Compare.Types.CompareTarget.Version, Result = Compare.Types.CompareResult.Greater, Version = 0 } },
            Success =
            {
                new RequestOp { RequestRange = new RangeRequest { Key = Key(prefix), RangeEnd = Key(WritePathTests.PrefixEnd(prefix)), SortTarget = SortTarget.Value, SortOrder = SortOrder.Descend, Limit = 3 } },
                new RequestOp { RequestPut = new PutRequest { Key = Key(prefix + "a"), Value = Key("a-replaced"), PrevKv = true } },
                new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = Key(prefix + "g"), RangeEnd = Key(prefix + "i"), PrevKv = true } },
                new RequestOp
                {
                    RequestTxn = new TxnRequest
                    {
                        Compare = { new Compare { Key = Key(prefix + "missing"), Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Greater, CreateRevision = 0 } },
                        Failure =
                        {
                            new RequestOp { RequestRange = new RangeRequest { Key = Key(prefix + "a"), RangeEnd = Key(prefix + "d") } },
                            new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = Key(prefix + "c"), PrevKv = true } },
                            new RequestOp { RequestPut = new PutRequest { Key = Key(prefix + "b"), Value = Key("b-replaced"), PrevKv = true } },
                        },
                    },
                },
            },
        });

        Assert.Equal(plain, proxy);
        Assert.True(proxy.Succeeded);
        Assert.Equal(["é", "zeta", "m"], proxy.Responses[0].ResponseRange.Kvs.Select(kv => kv.Value.ToStringUtf8()));
        Assert.Equal("m", proxy.Responses[1].ResponsePut.PrevKv.Value.ToStringUtf8());
        Assert.Equal(["B", "ba"], proxy.Responses[2].ResponseDeleteRange.PrevKvs.Select(kv => kv.Value.ToStringUtf8()));
        var nested = proxy.Responses[3].ResponseTxn;
        Assert.False(nested.Succeeded);
        Assert.Equal(["a-replaced", "b", "zeta"], nested.Responses[0].ResponseRange.Kvs.Select(kv => kv.Value.ToStringUtf8()));
        Assert.Equal("zeta", nested.Responses[1].ResponseDeleteRange.PrevKvs.Single().Value.ToStringUtf8());
        Assert.Equal("b", nested.Responses[2].ResponsePut.PrevKv.Value.ToStringUtf8());
    }
}
