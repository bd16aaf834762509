using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using static EtcdShield.EndToEnd.Encryption.StoredValue;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// Every way a value is written through the proxy leaves an envelope in etcd (read around the proxy) and
/// gives the client back its plaintext: Put, Put in either branch of a Txn and in nested Txns, the values a
/// watcher sees, and etcdctl end to end.
/// </summary>
public sealed class WritePathTests(EncryptingProxy etcd) : IClassFixture<EncryptingProxy>
{
    [Fact]
    public async Task Put_stores_an_envelope_and_the_proxy_returns_the_plaintext()
    {
        var key = NewPrefix("put") + "k";
        const string plaintext = "put-plaintext-1f0c";

        await etcd.PutAsync(key, plaintext);

        AssertSealed(await etcd.StoredAsync(key), plaintext);
        Assert.Equal(plaintext, await etcd.GetAsync(key));
    }

    [Fact]
    public async Task An_empty_value_is_stored_as_an_envelope_too_and_read_back_empty()
    {
        var key = NewPrefix("empty") + "k";

        await etcd.PutAsync(key, "");

        AssertSealed(await etcd.StoredAsync(key), "");
        Assert.Equal("", await etcd.GetAsync(key));
    }

    [Fact]
    public async Task Every_write_is_sealed_afresh_and_to_its_own_key()
    {
        var prefix = NewPrefix("fresh");
        const string plaintext = "same-plaintext-everywhere";

        await etcd.PutAsync(prefix + "a", plaintext);
        var first = await etcd.StoredAsync(prefix + "a");
        await etcd.PutAsync(prefix + "a", plaintext);
        var second = await etcd.StoredAsync(prefix + "a");
        await etcd.PutAsync(prefix + "b", plaintext);
        var other = await etcd.StoredAsync(prefix + "b");

        AssertSealed(first, plaintext);
        AssertSealed(second, plaintext);
        AssertSealed(other, plaintext);
        Assert.NotEqual(first, second);
        Assert.NotEqual(first, other);
        Assert.Equal(plaintext, await etcd.GetAsync(prefix + "a"));
        Assert.Equal(plaintext, await etcd.GetAsync(prefix + "b"));
    }

    [Fact]
    public async Task Txn_puts_are_sealed_in_the_success_branch()
    {
        var prefix = NewPrefix("txn-success");
        var txn = new TxnRequest
        {
            Compare = { new Compare { Key = Utf8(prefix + "k"), Target = Compare.Types.CompareTarget.Version, Result = Compare.Types.CompareResult.Equal, Version = 0 } },
            Success = { Put(prefix + "k", "success-branch-value") },
            Failure = { Put(prefix + "k", "failure-branch-value") },
        };

        var response = await etcd.ProxyKv.TxnAsync(txn);

        Assert.True(response.Succeeded);
        AssertSealed(await etcd.StoredAsync(prefix + "k"), "success-branch-value");
        Assert.Equal("success-branch-value", await etcd.GetAsync(prefix + "k"));
    }

    [Fact]
    public async Task Txn_puts_are_sealed_in_the_failure_branch()
    {
        var prefix = NewPrefix("txn-failure");
        await etcd.PutAsync(prefix + "k", "existing");
        var txn = new TxnRequest
        {
            Compare = { new Compare { Key = Utf8(prefix + "k"), Target = Compare.Types.CompareTarget.Version, Result = Compare.Types.CompareResult.Equal, Version = 0 } },
            Success = { Put(prefix + "k", "success-branch-value") },
            Failure = { Put(prefix + "k", "failure-branch-value", prevKv: true), Put(prefix + "other", "second-failure-op") },
        };

        var response = await etcd.ProxyKv.TxnAsync(txn);

        Assert.False(response.Succeeded);
        Assert.Equal("existing", response.Responses[0].ResponsePut.PrevKv.Value.ToStringUtf8());
        AssertSealed(await etcd.StoredAsync(prefix + "k"), "failure-branch-value");
        AssertSealed(await etcd.StoredAsync(prefix + "other"), "second-failure-op");
        Assert.Equal("failure-branch-value", await etcd.GetAsync(prefix + "k"));
        Assert.Equal("second-failure-op", await etcd.GetAsync(prefix + "other"));
    }

    [Fact]
    public async Task Nested_txn_puts_are_sealed_at_every_level()
    {
        var prefix = NewPrefix("txn-nested");
        var innermost = new TxnRequest
        {
            // Fails (the key does not exist), so the failure branch of the innermost txn runs.
            Compare = { new Compare { Key = Utf8(prefix + "missing"), Target = Compare.Types.CompareTarget.Version, Result = Compare.Types.CompareResult.Greater, Version = 0 } },
            Success = { Put(prefix + "never", "never-written") },
            Failure = { Put(prefix + "level2", "level-two-value") },
        };
        var middle = new TxnRequest
        {
            Success = { Put(prefix + "level1", "level-one-value"), new RequestOp { RequestTxn = innermost } },
        };
        var outer = new TxnRequest
        {
            Success = { Put(prefix + "level0", "level-zero-value"), new RequestOp { RequestTxn = middle } },
        };

        var response = await etcd.ProxyKv.TxnAsync(outer);

        Assert.True(response.Succeeded);
        Assert.True(response.Responses[1].ResponseTxn.Succeeded);
        Assert.False(response.Responses[1].ResponseTxn.Responses[1].ResponseTxn.Succeeded);
        foreach (var (key, value) in new[] { ("level0", "level-zero-value"), ("level1", "level-one-value"), ("level2", "level-two-value") })
        {
            AssertSealed(await etcd.StoredAsync(prefix + key), value);
            Assert.Equal(value, await etcd.GetAsync(prefix + key));
        }

        Assert.Null(await etcd.StoredAsync(prefix + "never"));
    }

    [Fact]
    public async Task A_watcher_sees_plaintext_puts_and_deletes_with_prev_kv_while_etcd_holds_envelopes()
    {
        var prefix = NewPrefix("watch");
        await using var watch = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest
        {
            Key = Utf8(prefix),
            RangeEnd = Utf8(PrefixEnd(prefix)),
            PrevKv = true,
        });

        await etcd.PutAsync(prefix + "k", "watched-first");
        var storedFirst = await etcd.StoredAsync(prefix + "k");
        await etcd.PutAsync(prefix + "k", "watched-second");
        var storedSecond = await etcd.StoredAsync(prefix + "k");
        await etcd.ProxyKv.TxnAsync(new TxnRequest { Success = { Put(prefix + "t", "watched-in-txn") } });
        await etcd.ProxyKv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8(prefix + "k") });
        var events = await watch.ReadEventsAsync(4);

        AssertSealed(storedFirst, "watched-first");
        AssertSealed(storedSecond, "watched-second");
        Assert.Equal(
            [
                (Event.Types.EventType.Put, "k", "watched-first", (string?)null),
                (Event.Types.EventType.Put, "k", "watched-second", "watched-first"),
                (Event.Types.EventType.Put, "t", "watched-in-txn", null),
                (Event.Types.EventType.Delete, "k", "", "watched-second"),
            ],
            events.Select(e => (e.Type, e.Kv.Key.ToStringUtf8()[prefix.Length..], e.Kv.Value.ToStringUtf8(), e.PrevKv?.Value.ToStringUtf8())));
    }

    [Fact]
    public async Task A_watch_from_an_old_revision_replays_history_in_plaintext()
    {
        var prefix = NewPrefix("replay");
        var first = await etcd.PutAsync(prefix + "k", "history-one");
        await etcd.PutAsync(prefix + "k", "history-two");
        await etcd.ProxyKv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8(prefix + "k") });

        await using var watch = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest
        {
            Key = Utf8(prefix + "k"),
            StartRevision = first.Header.Revision,
            PrevKv = true,
        });
        var events = await watch.ReadEventsAsync(3);

        Assert.Equal(["history-one", "history-two", ""], events.Select(e => e.Kv.Value.ToStringUtf8()));
        Assert.Equal([null, "history-one", "history-two"], events.Select(e => e.PrevKv?.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task A_watch_response_too_large_for_one_message_arrives_in_fragments_each_in_plaintext()
    {
        // etcd splits a watch response from max-request-bytes + 512 KiB on (2 MiB by default) when the watcher
        // asked for fragments. Replaying three 800 KB values gives one 2.4 MB response, split in two.
        var prefix = NewPrefix("fragments");
        var values = Enumerable.Range(0, 3).Select(i => $"fragment-{i}-" + new string((char)('a' + i), 800_000)).ToArray();
        long first = 0;
        for (var i = 0; i < values.Length; i++)
        {
            var put = await etcd.PutAsync(prefix + i, values[i]);
            first = first == 0 ? put.Header.Revision : first;
        }

        await using var watch = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest
        {
            Key = Utf8(prefix),
            RangeEnd = Utf8(PrefixEnd(prefix)),
            StartRevision = first,
            Fragment = true,
        });
        var events = await watch.ReadEventsAsync(values.Length);

        Assert.True(values.SequenceEqual(events.Select(e => e.Kv.Value.ToStringUtf8())), "the watcher did not get the plaintext values in order");
        Assert.True(watch.Responses.Count > 1, $"expected fragments, got {watch.Responses.Count} response(s)");
        Assert.All(watch.Responses.SkipLast(1), r => Assert.True(r.Fragment));
        Assert.False(watch.Responses[^1].Fragment);
        AssertSealed(await etcd.StoredAsync(prefix + 2), values[2]);
    }

    [Fact]
    public async Task Etcdctl_through_the_proxy_reads_back_exactly_what_it_wrote()
    {
        var prefix = NewPrefix("etcdctl");
        var etcdctl = etcd.Shield.Etcdctl(etcd.Pki);
        string[] values = ["plain ascii value", "zürich, ünïcødé ☃ €", "-starts-with-a-dash", "{\"json\":true}"];

        for (var i = 0; i < values.Length; i++)
        {
            (await etcdctl.RunAsync("put", prefix + i, "--", values[i])).EnsureSuccess();
        }

        var get = (await etcdctl.RunAsync("get", "--prefix", "--print-value-only", prefix)).EnsureSuccess();
        var single = (await etcdctl.RunAsync("get", prefix + "1")).EnsureSuccess();

        Assert.Equal(values, get.StdOutLines);
        Assert.Equal([prefix + "1", values[1]], single.StdOutLines);
        for (var i = 0; i < values.Length; i++)
        {
            AssertSealed(await etcd.StoredAsync(prefix + i), values[i]);
        }
    }

    [Fact]
    public async Task A_put_with_ignore_value_and_a_value_gets_etcds_refusal_and_nothing_is_sent()
    {
        var prefix = NewPrefix("ignore-refused");
        var put = await etcd.PutAsync(prefix + "k", "kept-value");
        var stored = await etcd.StoredAsync(prefix + "k");
        PutRequest Request(string key) => new() { Key = Utf8(key), Value = Utf8("must-never-leave-the-proxy"), IgnoreValue = true };
        TxnRequest InTxn(string key) => new() { Success = { new RequestOp { RequestPut = Request(key) } } };

        var fromProxy = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => etcd.ProxyKv.PutAsync(Request(prefix + "k")).ResponseAsync);
        var fromProxyTxn = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => etcd.ProxyKv.TxnAsync(InTxn(prefix + "k")).ResponseAsync);
        var after = await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(prefix + "k") });
        var fromEtcd = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => etcd.EtcdKv.PutAsync(Request(prefix + "direct")).ResponseAsync);
        var fromEtcdTxn = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => etcd.EtcdKv.TxnAsync(InTxn(prefix + "direct")).ResponseAsync);

        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, fromProxy.StatusCode);
        Assert.Equal("etcdserver: value is provided", fromProxy.Status.Detail);
        Assert.Equal((fromEtcd.StatusCode, fromEtcd.Status.Detail), (fromProxy.StatusCode, fromProxy.Status.Detail));
        Assert.Equal((fromEtcdTxn.StatusCode, fromEtcdTxn.Status.Detail), (fromProxyTxn.StatusCode, fromProxyTxn.Status.Detail));
        // The key's own revision, not the store's: other tests' writes move that.
        Assert.Equal(put.Header.Revision, after.Kvs.Single().ModRevision);
        Assert.Equal(stored, after.Kvs.Single().Value);
    }

    [Fact]
    public async Task A_put_with_ignore_value_keeps_the_stored_envelope_readable()
    {
        var prefix = NewPrefix("ignore-kept");
        await etcd.PutAsync(prefix + "k", "value-kept-across-a-lease-change");
        var before = await etcd.StoredAsync(prefix + "k");
        var lease = (await new Lease.LeaseClient(etcd.ProxyChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;

        var put = await etcd.ProxyKv.PutAsync(new PutRequest { Key = Utf8(prefix + "k"), IgnoreValue = true, Lease = lease, PrevKv = true });
        var txn = await etcd.ProxyKv.TxnAsync(new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = Utf8(prefix + "k"), IgnoreValue = true, IgnoreLease = true, PrevKv = true } } } });
        var read = await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(prefix + "k") });

        Assert.Equal(before, await etcd.StoredAsync(prefix + "k"));
        Assert.Equal("value-kept-across-a-lease-change", put.PrevKv.Value.ToStringUtf8());
        Assert.Equal("value-kept-across-a-lease-change", txn.Responses[0].ResponsePut.PrevKv.Value.ToStringUtf8());
        Assert.Equal("value-kept-across-a-lease-change", read.Kvs.Single().Value.ToStringUtf8());
        Assert.Equal(lease, read.Kvs.Single().Lease);
        Assert.Equal(3, read.Kvs.Single().Version);
    }

    [Fact]
    public async Task A_put_with_ignore_value_on_a_missing_key_gets_etcds_answer()
    {
        var prefix = NewPrefix("ignore-missing");
        static PutRequest Request(string key) => new() { Key = Utf8(key), IgnoreValue = true };

        var fromProxy = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => etcd.ProxyKv.PutAsync(Request(prefix + "a")).ResponseAsync);
        var fromEtcd = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => etcd.EtcdKv.PutAsync(Request(prefix + "b")).ResponseAsync);

        Assert.Equal((fromEtcd.StatusCode, fromEtcd.Status.Detail), (fromProxy.StatusCode, fromProxy.Status.Detail));
    }

    internal static RequestOp Put(string key, string value, bool prevKv = false) =>
        new() { RequestPut = new PutRequest { Key = Utf8(key), Value = Utf8(value), PrevKv = prevKv } };

    /// <summary>The range end that selects every key starting with <paramref name="prefix"/> (what etcdctl --prefix sends).</summary>
    internal static string PrefixEnd(string prefix) => prefix[..^1] + (char)(prefix[^1] + 1);

    private static string NewPrefix(string name) => ShieldedEtcd.NewPrefix(name);
}
