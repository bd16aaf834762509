using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Core;
using static EtcdShield.Tests.Encryption.GuardedTxnTests;
using static EtcdShield.Tests.Encryption.ValueHandlerBed;

namespace EtcdShield.Tests.Encryption;

/// <summary>Put, Range, DeleteRange and Txn through their handlers: what reaches etcd is sealed and within its limit, and what comes back is opened.</summary>
public sealed class KvValueHandlersTests : IDisposable
{
    private readonly ValueHandlerBed _bed = new();

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task A_put_reaches_etcd_sealed_to_its_key_and_its_prev_kv_comes_back_opened()
    {
        _bed.Store("/a", "old");

        var response = await PutAsync(new PutRequest { Key = Utf8("/a"), Value = Utf8("new"), PrevKv = true });

        Assert.Equal("old", response.PrevKv.Value.ToStringUtf8());
        var sent = Assert.Single(_bed.Etcd.SentTo<PutRequest>("KV/Put"));
        Assert.NotEqual(Utf8("new"), sent.Value);
        Assert.Equal("new", _bed.Open(Utf8("/a"), sent.Value));
        Assert.Equal("new", _bed.Stored("/a"));
    }

    [Fact]
    public async Task A_put_with_ignore_value_and_a_value_is_refused_as_etcd_refuses_it_and_without_one_keeps_the_sealed_value()
    {
        _bed.Store("/a", "kept");

        var refusal = await Assert.ThrowsAsync<RpcException>(() => PutAsync(new PutRequest { Key = Utf8("/a"), Value = Utf8("x"), IgnoreValue = true }));
        await PutAsync(new PutRequest { Key = Utf8("/a"), IgnoreValue = true, Lease = 9 });

        Assert.Equal((StatusCode.InvalidArgument, "etcdserver: value is provided"), (refusal.StatusCode, refusal.Status.Detail));
        Assert.Single(_bed.Etcd.SentTo<PutRequest>("KV/Put"));
        Assert.Equal(("kept", 9L), (_bed.Stored("/a"), _bed.Etcd.Store.Get("/a")!.Lease));
    }

    [Fact]
    public async Task A_put_over_the_request_limit_as_plaintext_gets_etcds_answer_before_anything_is_sealed_or_sent()
    {
        var refusal = await Assert.ThrowsAsync<RpcException>(() => PutAsync(new PutRequest { Key = Utf8("/a"), Value = Utf8(new string('x', MaxRequestBytes)) }));

        Assert.Equal((StatusCode.InvalidArgument, "etcdserver: request is too large"), (refusal.StatusCode, refusal.Status.Detail));
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_put_that_fits_only_as_plaintext_is_refused_by_the_proxy_with_the_sealed_size()
    {
        var request = new PutRequest { Key = Utf8("/a"), Value = Utf8(new string('x', MaxRequestBytes - _bed.Seal("/a", "").Length - 1)) };
        Assert.True(request.CalculateSize() <= MaxRequestBytes);
        var sealedRequest = request.Clone();
        sealedRequest.Value = _bed.Seal(request.Key, request.Value);

        var refusal = await Assert.ThrowsAsync<RpcException>(() => PutAsync(request));

        Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
        Assert.Equal(
            $"etcdshield: request is too large after encryption ({sealedRequest.CalculateSize()} bytes, etcd accepts at most {MaxRequestBytes})",
            refusal.Status.Detail);
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_txn_that_fits_only_as_plaintext_is_refused_by_the_proxy_and_a_read_only_one_is_never_measured()
    {
        var half = new string('x', (MaxRequestBytes / 2) - 60);
        var writes = new TxnRequest { Success = { PutOp("/a", half), PutOp("/b", half) } };
        Assert.True(writes.CalculateSize() <= MaxRequestBytes);
        var sealedTxn = writes.Clone();
        foreach (var op in sealedTxn.Success)
        {
            op.RequestPut.Value = _bed.Seal(op.RequestPut.Key, op.RequestPut.Value);
        }

        var reads = new TxnRequest { Success = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8(new string('k', MaxRequestBytes)) } } } };

        var refusal = await Assert.ThrowsAsync<RpcException>(() => _bed.CallAsync<TxnResponse>(_bed.Txn, "KV/Txn", writes));
        var read = await _bed.CallAsync<TxnResponse>(_bed.Txn, "KV/Txn", reads);

        Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
        Assert.Equal(
            $"etcdshield: request is too large after encryption ({sealedTxn.CalculateSize()} bytes, etcd accepts at most {MaxRequestBytes})",
            refusal.Status.Detail);
        Assert.True(read.Succeeded);
        Assert.Equal([reads], _bed.Etcd.SentTo<TxnRequest>("KV/Txn"));
    }

    [Fact]
    public async Task Deleted_values_come_back_opened_and_a_planted_plaintext_fails_the_whole_range()
    {
        _bed.Store("/d/1", "one");
        _bed.Store("/d/2", "two");
        _bed.Etcd.Store.Put("/p/planted", "attacker");
        _bed.Store("/p/real", "real");

        var deleted = await _bed.CallAsync<DeleteRangeResponse>(_bed.DeleteRange, "KV/DeleteRange", new DeleteRangeRequest { Key = Utf8("/d/"), RangeEnd = Utf8("/d0"), PrevKv = true });
        var refusal = await Assert.ThrowsAsync<RpcException>(() => _bed.CallAsync<RangeResponse>(_bed.Range, "KV/Range", new RangeRequest { Key = Utf8("/p/"), RangeEnd = Utf8("/p0") }));

        Assert.Equal(["one", "two"], deleted.PrevKvs.Select(kv => kv.Value.ToStringUtf8()));
        Assert.Equal(2, deleted.Deleted);
        Assert.Equal((StatusCode.DataLoss, "etcdshield: cannot decrypt value of key \"/p/planted\": value is not encrypted"), (refusal.StatusCode, refusal.Status.Detail));
    }

    private Task<PutResponse> PutAsync(PutRequest request) => _bed.CallAsync<PutResponse>(_bed.Put, "KV/Put", request);
}
