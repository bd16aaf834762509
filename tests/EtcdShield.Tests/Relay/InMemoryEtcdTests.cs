using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Protocol.V3electionpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;
using static EtcdShield.Protocol.Etcdserverpb.RangeRequest.Types;

namespace EtcdShield.Tests.Relay;

/// <summary>The in-memory etcd keeps etcd 3.4's rules, so that tests built on it test the proxy and not the fake.</summary>
public sealed class InMemoryEtcdTests
{
    private readonly InMemoryEtcd _etcd = new();

    private EtcdKvStore Store => _etcd.Store;

    [Fact]
    public void Writes_raise_the_revision_once_each_and_keep_create_revision_mod_revision_and_version()
    {
        Assert.Equal(1, Store.Revision);
        Assert.Equal(2, Store.Put("/a", "1"));
        Assert.Equal(3, Store.Put("/a", "2"));
        Assert.Equal(4, Store.Delete("/a"));
        Assert.Equal(4, Store.Delete("/a"));
        Assert.Equal(5, Store.Put("/a", "3"));

        var a = Store.Get("/a")!;
        Assert.Equal((5L, 5L, 1L, "3"), (a.CreateRevision, a.ModRevision, a.Version, a.Value.ToStringUtf8()));
        var before = Store.Range(new RangeRequest { Key = Utf8("/a"), Revision = 3 });
        Assert.Equal((2L, 3L, 2L, "2"), (before.Kvs[0].CreateRevision, before.Kvs[0].ModRevision, before.Kvs[0].Version, before.Kvs[0].Value.ToStringUtf8()));
        Assert.Empty(Store.Range(new RangeRequest { Key = Utf8("/a"), Revision = 4 }).Kvs);
        var future = Assert.Throws<RpcException>(() => Store.Range(new RangeRequest { Key = Utf8("/a"), Revision = 6 }));
        Assert.Equal(StatusCode.OutOfRange, future.StatusCode);
    }

    [Fact]
    public void Put_returns_the_previous_key_value_and_keeps_it_with_ignore_value()
    {
        Store.Put("/a", "old");

        var put = Store.Put(new PutRequest { Key = Utf8("/a"), IgnoreValue = true, Lease = 7, PrevKv = true });

        Assert.Equal("old", put.PrevKv.Value.ToStringUtf8());
        Assert.Equal(("old", 7L, 2L), (Store.Get("/a")!.Value.ToStringUtf8(), Store.Get("/a")!.Lease, Store.Get("/a")!.Version));
        var missing = Assert.Throws<RpcException>(() => Store.Put(new PutRequest { Key = Utf8("/b"), IgnoreValue = true }));
        Assert.Equal((StatusCode.InvalidArgument, "etcdserver: key not found"), (missing.StatusCode, missing.Status.Detail));
    }

    [Fact]
    public void Range_counts_every_key_limits_after_sorting_and_says_more()
    {
        foreach (var (key, value) in new[] { ("/k/1", "c"), ("/k/2", "a"), ("/k/3", "d"), ("/k/4", "b"), ("/l", "z") })
        {
            Store.Put(key, value);
        }

        var prefix = new RangeRequest { Key = Utf8("/k/"), RangeEnd = Utf8("/k0"), Limit = 2 };
        var byKey = Store.Range(prefix);
        Assert.Equal(["/k/1", "/k/2"], Keys(byKey));
        Assert.Equal((4L, true), (byKey.Count, byKey.More));

        // Value order NONE: ascending over the first limit + 1 keys only (etcd's rangeLimit), ASCEND over all.
        var valueNone = prefix.Clone();
        valueNone.SortTarget = SortTarget.Value;
        Assert.Equal(["/k/2", "/k/1"], Keys(Store.Range(valueNone)));
        var valueAscend = valueNone.Clone();
        valueAscend.SortOrder = SortOrder.Ascend;
        Assert.Equal(["/k/2", "/k/4"], Keys(Store.Range(valueAscend)));
        var keyDescend = prefix.Clone();
        keyDescend.SortOrder = SortOrder.Descend;
        Assert.Equal(["/k/4", "/k/3"], Keys(Store.Range(keyDescend)));

        var countOnly = Store.Range(new RangeRequest { Key = Utf8("/"), RangeEnd = ByteString.CopyFrom(0), CountOnly = true });
        Assert.Equal((5L, 0, false), (countOnly.Count, countOnly.Kvs.Count, countOnly.More));
        var keysOnly = Store.Range(new RangeRequest { Key = Utf8("/l"), KeysOnly = true });
        Assert.True(keysOnly.Kvs.Single().Value.IsEmpty);
        Assert.Empty(Store.Range(new RangeRequest { Key = Utf8("/k/3"), RangeEnd = Utf8("/k/1") }).Kvs);
    }

    [Fact]
    public void A_txn_decides_every_compare_nested_ones_too_before_its_first_op()
    {
        Store.Put("/a", "1");
        var txn = new TxnRequest
        {
            Compare = { new Compare { Key = Utf8("/a"), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = Utf8("1") } },
            Success =
            {
                new RequestOp { RequestPut = new PutRequest { Key = Utf8("/a"), Value = Utf8("2") } },
                new RequestOp
                {
                    // Decided on the store before the put above: /a still holds "1".
                    RequestTxn = new TxnRequest
                    {
                        Compare = { new Compare { Key = Utf8("/a"), Target = CompareTarget.Version, Result = CompareResult.Equal, Version = 1 } },
                        Success = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8("/a") } } },
                    },
                },
            },
        };

        var response = Store.Txn(txn);

        Assert.True(response.Succeeded);
        Assert.True(response.Responses[1].ResponseTxn.Succeeded);
        // ...while its range sees the txn's own put.
        Assert.Equal("2", response.Responses[1].ResponseTxn.Responses[0].ResponseRange.Kvs[0].Value.ToStringUtf8());
        Assert.Equal(3, response.Header.Revision);
    }

    [Fact]
    public void Compares_on_a_missing_key_fail_for_value_and_see_zeros_otherwise()
    {
        TxnResponse Compare(Compare compare) => Store.Txn(new TxnRequest { Compare = { compare } });

        Assert.False(Compare(new Compare { Key = Utf8("/none"), Target = CompareTarget.Value, Result = CompareResult.NotEqual, Value = Utf8("x") }).Succeeded);
        Assert.True(Compare(new Compare { Key = Utf8("/none"), Target = CompareTarget.Version, Result = CompareResult.Equal, Version = 0 }).Succeeded);
        Assert.True(Compare(new Compare { Key = Utf8("/none"), Target = CompareTarget.Mod, Result = CompareResult.Less, ModRevision = 1 }).Succeeded);
    }

    [Fact]
    public async Task Scripted_calls_fail_wait_at_gates_and_are_recorded_as_sent()
    {
        var kv = new KV.KVClient(_etcd);
        _etcd.FailNext("KV/Put", StatusCode.Unavailable, "etcdserver: leader changed");
        var gate = _etcd.HoldNext("KV/Put");
        var request = new PutRequest { Key = Utf8("/a"), Value = Utf8("1") };

        var refused = await Assert.ThrowsAsync<RpcException>(() => kv.PutAsync(request).ResponseAsync);
        var held = kv.PutAsync(request).ResponseAsync;
        await gate.Reached;
        Assert.False(held.IsCompleted);
        Assert.Null(Store.Get("/a"));
        gate.Open();
        await held;

        Assert.Equal((StatusCode.Unavailable, "etcdserver: leader changed"), (refused.StatusCode, refused.Status.Detail));
        Assert.Equal("1", Store.Get("/a")!.Value.ToStringUtf8());
        Assert.Equal([request, request], _etcd.SentTo<PutRequest>("KV/Put"));
        Assert.NotSame(request, _etcd.SentTo<PutRequest>("KV/Put")[0]);
    }

    [Fact]
    public async Task A_held_call_that_is_cancelled_fails_cancelled_and_never_reaches_the_store()
    {
        using var cancel = new CancellationTokenSource();
        var gate = _etcd.HoldNext("KV/Put");
        var held = new KV.KVClient(_etcd).PutAsync(new PutRequest { Key = Utf8("/a"), Value = Utf8("1") }, cancellationToken: cancel.Token).ResponseAsync;
        await gate.Reached;

        await cancel.CancelAsync();

        var failure = await Assert.ThrowsAsync<RpcException>(() => held);
        Assert.Equal(StatusCode.Cancelled, failure.StatusCode);
        Assert.Null(Store.Get("/a"));
    }

    [Fact]
    public async Task A_scripted_duplex_stream_passes_requests_and_responses_and_ends_with_the_scripted_status()
    {
        var stream = _etcd.NextStream("Watch/Watch");
        using var call = new Watch.WatchClient(_etcd).Watch();

        await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = Utf8("/a") } });
        stream.Respond(new WatchResponse { WatchId = 3, Created = true });
        stream.Fail(StatusCode.Unavailable, "etcdserver: no leader");

        var sent = Assert.IsType<WatchRequest>(await stream.Requests.ReadAsync());
        Assert.Equal("/a", sent.CreateRequest.Key.ToStringUtf8());
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(3, call.ResponseStream.Current.WatchId);
        var end = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal((StatusCode.Unavailable, "etcdserver: no leader"), (end.StatusCode, end.Status.Detail));
        Assert.False(stream.RequestsCompleted);
        await call.RequestStream.CompleteAsync();
        Assert.True(stream.RequestsCompleted);
    }

    [Fact]
    public async Task A_scripted_server_stream_gets_its_request_and_sees_the_caller_dispose_of_it()
    {
        var stream = _etcd.NextStream("Election/Observe");
        var call = new Election.ElectionClient(_etcd).Observe(new LeaderRequest { Name = Utf8("/e") }, new Metadata { { "token", "t" } });

        var options = await stream.Opened;
        var request = Assert.IsType<LeaderRequest>(await stream.Requests.ReadAsync());
        stream.Respond(new LeaderResponse { Kv = new KeyValue { Key = Utf8("/e/1") } });
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        call.Dispose();
        await stream.Disposed;

        Assert.Equal("t", options.Headers!.GetValue("token"));
        Assert.Equal("/e", request.Name.ToStringUtf8());
        Assert.Equal("/e/1", call.ResponseStream.Current.Kv.Key.ToStringUtf8());
        var after = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Cancelled, after.StatusCode);
    }

    [Fact]
    public async Task An_unscripted_method_fails_unimplemented()
    {
        var failure = await Assert.ThrowsAsync<RpcException>(() => new Maintenance.MaintenanceClient(_etcd).StatusAsync(new StatusRequest()).ResponseAsync);

        Assert.Equal(StatusCode.Unimplemented, failure.StatusCode);
    }

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);

    private static List<string> Keys(RangeResponse response) => [.. response.Kvs.Select((KeyValue kv) => kv.Key.ToStringUtf8())];
}
