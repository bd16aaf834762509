using System.Globalization;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.EndToEnd.Encryption.Reference;
using static EtcdShield.EndToEnd.Encryption.StoredValue;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// Compares on VALUE cannot be done by etcd on ciphertext, so the proxy decides them on plaintext and makes
/// etcd commit only if nothing it compared changed. These tests hold it to etcd's own results on plaintext,
/// and to exactness under contention: concurrent compare-and-swap increments lose no update.
/// </summary>
public sealed class CompareByValueTests(EncryptingProxy etcd) : IClassFixture<EncryptingProxy>
{
    private const int Clients = 8;
    private const int IncrementsPerClient = 25;

    [Fact]
    public async Task Concurrent_compare_and_swap_increments_through_the_proxy_lose_no_update()
    {
        var key = Key(ShieldedEtcd.NewPrefix("counter") + "n");
        await etcd.ProxyKv.PutAsync(new PutRequest { Key = key, Value = Utf8("0") });

        var clients = Enumerable.Range(0, Clients).Select(_ => IncrementAsync(new KV.KVClient(etcd.NewProxyChannel()), key)).ToArray();
        var attempts = await Task.WhenAll(clients);

        var final = (await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = key })).Kvs.Single();
        Assert.Equal((Clients * IncrementsPerClient).ToString(CultureInfo.InvariantCulture), final.Value.ToStringUtf8());
        // One version per successful swap and none for a failed one: no increment was applied twice.
        Assert.Equal(1 + (Clients * IncrementsPerClient), final.Version);
        Assert.All(attempts, a => Assert.True(a >= IncrementsPerClient));
        AssertSealed(await etcd.StoredAsync(key.ToStringUtf8()), final.Value.ToStringUtf8());
    }

    [Fact]
    public async Task A_range_compare_racing_deletions_is_decided_on_exactly_the_keys_present_at_its_revision()
    {
        // The range starts with one key that fails the compare; deleting it makes the compare hold, and deleting
        // every other key makes it fail again (an empty range compares false). Every answer carries the revision
        // it was decided at, so each one can be checked against the deletions, however the race went.
        var prefix = ShieldedEtcd.NewPrefix("range-race");
        var keys = Enumerable.Range(0, 10).Select(i => $"{prefix}r/{(char)('a' + i)}").ToArray();
        var seed = new TxnRequest();
        seed.Success.Add(keys.Select((k, i) => WritePathTests.Put(k, i == 0 ? "bad" : "ok")));
        await etcd.ProxyKv.TxnAsync(seed);
        var compare = new TxnRequest
        {
            Compare = { new Compare { Key = Key(prefix + "r/"), RangeEnd = Key(prefix + "r0"), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = Utf8("ok") } },
            Success = { new RequestOp { RequestRange = new RangeRequest { Key = Key(prefix + "r/"), RangeEnd = Key(prefix + "r0"), CountOnly = true } } },
            Failure = { new RequestOp { RequestRange = new RangeRequest { Key = Key(prefix + "r/"), RangeEnd = Key(prefix + "r0"), CountOnly = true } } },
        };
        var deletionsDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var workers = Enumerable.Range(0, 4).Select(_ => AnswerUntilAsync(new KV.KVClient(etcd.NewProxyChannel()), compare, deletionsDone.Task)).ToArray();

        // Every worker has answered once before the first deletion.
        await Task.WhenAll(workers.Select(w => w.FirstAnswer));
        var revisions = new List<long>();
        foreach (var key in keys)
        {
            revisions.Add((await etcd.EtcdKv.DeleteRangeAsync(new DeleteRangeRequest { Key = Key(key) })).Header.Revision);
        }

        deletionsDone.SetResult();
        var answers = (await Task.WhenAll(workers.Select(w => w.All))).SelectMany(a => a).ToList();

        var (badDeleted, allDeleted) = (revisions[0], revisions[^1]);
        Assert.All(answers, a => Assert.True(
            a.Succeeded == (a.Revision >= badDeleted && a.Revision < allDeleted),
            $"decided {(a.Succeeded ? "true" : "false")} at revision {a.Revision}; the failing key went at {badDeleted} and the last key at {allDeleted}"));
        Assert.Contains(answers, a => a.Revision < badDeleted);
        Assert.Contains(answers, a => a.Revision >= allDeleted);
    }

    [Theory]
    [InlineData(CompareResult.Equal)]
    [InlineData(CompareResult.NotEqual)]
    [InlineData(CompareResult.Greater)]
    [InlineData(CompareResult.Less)]
    public async Task A_value_compare_on_one_key_decides_as_etcd_does_on_plaintext(CompareResult result)
    {
        var reference = await Reference.SeedAsync(etcd, "compare", ("k", "m"), ("other", "o"));
        var proxyAnswers = new List<TxnResponse>();
        var plainAnswers = new List<TxnResponse>();

        // Stored is "m": below, equal, above, empty, a longer value with it as prefix, and a UTF-8 value.
        foreach (var value in new[] { "a", "m", "z", "", "mm", "é" })
        {
            var (proxy, plain) = await reference.TxnAsync(prefix => Txn(prefix, new Compare { Key = Key(prefix + "k"), Target = CompareTarget.Value, Result = result, Value = Utf8(value) }));
            proxyAnswers.Add(proxy);
            plainAnswers.Add(plain);
        }

        Assert.Equal(plainAnswers, proxyAnswers);
        Assert.Contains(proxyAnswers, a => a.Succeeded);
        Assert.Contains(proxyAnswers, a => !a.Succeeded);
    }

    [Theory]
    [InlineData(CompareResult.Equal)]
    [InlineData(CompareResult.NotEqual)]
    [InlineData(CompareResult.Greater)]
    [InlineData(CompareResult.Less)]
    public async Task A_value_compare_on_a_missing_key_is_false_as_in_etcd(CompareResult result)
    {
        var reference = await Reference.SeedAsync(etcd, "missing", ("other", "o"));

        var (proxy, plain) = await reference.TxnAsync(prefix => Txn(prefix, new Compare { Key = Key(prefix + "absent"), Target = CompareTarget.Value, Result = result, Value = ByteString.Empty }));

        Assert.Equal(plain, proxy);
        Assert.False(proxy.Succeeded);
    }

    [Fact]
    public async Task A_value_compare_over_a_range_holds_only_if_every_key_satisfies_it_as_in_etcd()
    {
        var reference = await Reference.SeedAsync(etcd, "range", ("r/a", "b"), ("r/b", "c"), ("r/c", "d"), ("s", "z"));
        (string From, string To, CompareResult Result, string Value)[] cases =
        [
            ("r/", "r0", CompareResult.Greater, "a"),
            ("r/", "r0", CompareResult.Greater, "b"),
            ("r/", "r0", CompareResult.Less, "e"),
            ("r/", "r0", CompareResult.Less, "d"),
            ("r/", "r0", CompareResult.NotEqual, "x"),
            ("r/", "r0", CompareResult.NotEqual, "c"),
            ("r/", "t", CompareResult.Greater, "a"),
            ("r/b", "r/c", CompareResult.Equal, "c"),
            ("r/b", "r/z", CompareResult.Equal, "c"),
            ("empty/", "empty0", CompareResult.NotEqual, "x"),
        ];
        var proxyAnswers = new List<TxnResponse>();
        var plainAnswers = new List<TxnResponse>();

        foreach (var (from, to, result, value) in cases)
        {
            var (proxy, plain) = await reference.TxnAsync(prefix => Txn(prefix, new Compare
            {
                Key = Key(prefix + from),
                RangeEnd = Key(prefix + to),
                Target = CompareTarget.Value,
                Result = result,
                Value = Utf8(value),
            }));
            proxyAnswers.Add(proxy);
            plainAnswers.Add(plain);
        }

        Assert.Equal(plainAnswers, proxyAnswers);
        Assert.Equal([true, false, true, false, true, false, true, true, false, false], proxyAnswers.Select(a => a.Succeeded));
    }

    [Fact]
    public async Task A_value_compare_over_more_keys_than_etcd_allows_compares_in_one_txn_still_decides_as_etcd_does()
    {
        // etcd allows 128 compares per txn level; the proxy guards every key of a compared range.
        var keys = Enumerable.Range(0, 150).Select(i => $"big/{i:D3}").ToArray();
        var reference = await Reference.SeedManyAsync(etcd, "many", keys.Select(k => (k, "same")).ToArray());
        static TxnRequest All(string prefix, CompareResult result, string value) => Txn(prefix, new Compare
        {
            Key = Key(prefix + "big/"),
            RangeEnd = Key(prefix + "big0"),
            Target = CompareTarget.Value,
            Result = result,
            Value = Utf8(value),
        });

        var (equal, equalPlain) = await reference.TxnAsync(prefix => All(prefix, CompareResult.Equal, "same"));
        var (greater, greaterPlain) = await reference.TxnAsync(prefix => All(prefix, CompareResult.Greater, "same"));
        await reference.PutBothAsync("big/149", "different");
        var (changed, changedPlain) = await reference.TxnAsync(prefix => All(prefix, CompareResult.Equal, "same"));

        Assert.Equal(equalPlain, equal);
        Assert.Equal(greaterPlain, greater);
        Assert.Equal(changedPlain, changed);
        Assert.Equal([true, false, false], new[] { equal.Succeeded, greater.Succeeded, changed.Succeeded });
    }

    [Fact]
    public async Task A_txn_with_a_hundred_value_compares_decides_as_etcd_does()
    {
        var keys = Enumerable.Range(0, 100).Select(i => $"c/{i:D3}").ToArray();
        var reference = await Reference.SeedManyAsync(etcd, "hundred", keys.Select(k => (k, "v-" + k)).ToArray());
        TxnRequest Build(string prefix, string last)
        {
            var txn = Txn(prefix, new Compare { Key = Key(prefix + keys[^1]), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = Utf8(last) });
            foreach (var key in keys[..^1])
            {
                txn.Compare.Add(new Compare { Key = Key(prefix + key), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = Utf8("v-" + key) });
            }

            return txn;
        }

        var (holds, holdsPlain) = await reference.TxnAsync(prefix => Build(prefix, "v-" + keys[^1]));
        var (fails, failsPlain) = await reference.TxnAsync(prefix => Build(prefix, "something else"));

        Assert.Equal(holdsPlain, holds);
        Assert.Equal(failsPlain, fails);
        Assert.True(holds.Succeeded);
        Assert.False(fails.Succeeded);
    }

    [Theory]
    [InlineData("m", "x", true)]
    [InlineData("m", "x", false)]
    [InlineData("a", "x", true)]
    [InlineData("m", "o", true)]
    public async Task Nested_and_combined_compares_decide_every_level_as_etcd_does(string outerValue, string innerValue, bool outerVersionHolds)
    {
        var reference = await Reference.SeedAsync(etcd, "nested", ("k", "m"), ("other", "o"));

        var (proxy, plain) = await reference.TxnAsync(prefix => new TxnRequest
        {
            Compare =
            {
                new Compare { Key = Key(prefix + "k"), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = Utf8(outerValue) },
                new Compare { Key = Key(prefix + "k"), Target = CompareTarget.Version, Result = outerVersionHolds ? CompareResult.Equal : CompareResult.Greater, Version = 1 },
            },
            Success =
            {
                new RequestOp { RequestTxn = Txn(prefix, new Compare { Key = Key(prefix + "other"), Target = CompareTarget.Value, Result = CompareResult.Less, Value = Utf8(innerValue) }) },
                new RequestOp { RequestRange = new RangeRequest { Key = Key(prefix + "k") } },
            },
            Failure =
            {
                new RequestOp
                {
                    RequestTxn = new TxnRequest
                    {
                        Compare = { new Compare { Key = Key(prefix + "other"), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = Utf8("o") } },
                        Success = { new RequestOp { RequestRange = new RangeRequest { Key = Key(prefix), RangeEnd = Key(WritePathTests.PrefixEnd(prefix)) } } },
                    },
                },
            },
        });

        Assert.Equal(plain, proxy);
    }

    /// <summary>A read-only txn on <paramref name="compare"/> whose answer tells which branch ran and what the keys hold.</summary>
    private static TxnRequest Txn(string prefix, Compare compare) => new()
    {
        Compare = { compare },
        Success = { new RequestOp { RequestRange = new RangeRequest { Key = Key(prefix), RangeEnd = Key(WritePathTests.PrefixEnd(prefix)), Limit = 5 } } },
        Failure = { new RequestOp { RequestRange = new RangeRequest { Key = Key(prefix), RangeEnd = Key(WritePathTests.PrefixEnd(prefix)), CountOnly = true } } },
    };

    /// <summary>Sends <paramref name="txn"/> over and over until <paramref name="stop"/> completes, then once more,
    /// recording whether it succeeded and the revision it was decided at.</summary>
    private static (Task FirstAnswer, Task<List<(bool Succeeded, long Revision)>> All) AnswerUntilAsync(KV.KVClient kv, TxnRequest txn, Task stop)
    {
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<List<(bool, long)>> RunAsync()
        {
            var answers = new List<(bool, long)>();
            try
            {
                bool last;
                do
                {
                    last = stop.IsCompleted;
                    var response = await kv.TxnAsync(txn, deadline: DateTime.UtcNow.AddSeconds(30));
                    answers.Add((response.Succeeded, response.Header.Revision));
                    first.TrySetResult();
                }
                while (!last);
            }
            catch (Exception e)
            {
                first.TrySetException(e);
                throw;
            }

            return answers;
        }

        return (first.Task, RunAsync());
    }

    /// <summary>Increments the counter <see cref="IncrementsPerClient"/> times by compare-and-swap; returns the txns it took.</summary>
    private static async Task<int> IncrementAsync(KV.KVClient kv, ByteString key)
    {
        var attempts = 0;
        var last = (await kv.RangeAsync(new RangeRequest { Key = key })).Kvs.Single().Value;
        for (var done = 0; done < IncrementsPerClient;)
        {
            var next = Utf8((int.Parse(last.ToStringUtf8(), CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture));
            TxnResponse response;
            try
            {
                response = await kv.TxnAsync(new TxnRequest
                {
                    Compare = { new Compare { Key = key, Target = CompareTarget.Value, Result = CompareResult.Equal, Value = last } },
                    Success = { new RequestOp { RequestPut = new PutRequest { Key = key, Value = next } } },
                    Failure = { new RequestOp { RequestRange = new RangeRequest { Key = key } } },
                }, deadline: DateTime.UtcNow.AddSeconds(30));
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Aborted)
            {
                // The proxy gave up after its bounded guard retries: a lost race, retried as a client would.
                attempts++;
                last = (await kv.RangeAsync(new RangeRequest { Key = key })).Kvs.Single().Value;
                continue;
            }

            attempts++;
            if (response.Succeeded)
            {
                last = next;
                done++;
            }
            else
            {
                last = response.Responses[0].ResponseRange.Kvs.Single().Value;
            }
        }

        return attempts;
    }
}
