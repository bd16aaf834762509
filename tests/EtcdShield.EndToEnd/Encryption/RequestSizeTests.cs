using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using Grpc.Core;
using static EtcdShield.EndToEnd.Encryption.StoredValue;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// etcd and the proxy both limited to 4096-byte requests. Encryption adds 113 bytes to every value, so a
/// request etcd would take as plaintext can be too large once sealed: the proxy refuses it itself with
/// RESOURCE_EXHAUSTED saying so, and nothing reaches etcd. Requests already too large as plaintext get etcd's
/// own answer.
/// </summary>
public sealed class RequestSizeTests(RequestSizeTests.SmallRequests etcd) : IClassFixture<RequestSizeTests.SmallRequests>
{
    private const int Limit = 4096;

    [Theory]
    [InlineData(3990)] // the envelope alone is over the limit
    [InlineData(3965)] // the envelope fits, the request around it does not
    public async Task A_put_that_fits_as_plaintext_but_not_once_encrypted_is_refused_and_nothing_is_written(int length)
    {
        var prefix = ShieldedEtcd.NewPrefix("size");
        var value = new string('s', length);
        var request = new PutRequest { Key = Utf8(prefix + "sealed"), Value = Utf8(value) };
        Assert.True(request.CalculateSize() < Limit - 60, "the plaintext request must leave room for etcd's own framing");
        var direct = await etcd.EtcdKv.PutAsync(new PutRequest { Key = Utf8(prefix + "direct"), Value = Utf8(value) });

        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.PutAsync(request).ResponseAsync);
        var after = await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(prefix), RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)) });

        Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
        Assert.StartsWith("etcdshield: ", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("too large after encryption", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("sss", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(direct.Header.Revision, after.Header.Revision);
        Assert.Equal([prefix + "direct"], after.Kvs.Select(kv => kv.Key.ToStringUtf8()));
    }

    [Fact]
    public async Task A_txn_that_grows_too_large_once_encrypted_is_refused_as_a_whole()
    {
        var prefix = ShieldedEtcd.NewPrefix("size-txn");
        var before = await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(prefix) });
        var txn = new TxnRequest
        {
            Success =
            {
                WritePathTests.Put(prefix + "small", "small-value"),
                WritePathTests.Put(prefix + "a", new string('a', 1900)),
                WritePathTests.Put(prefix + "b", new string('b', 1900)),
            },
        };
        Assert.True(txn.CalculateSize() < Limit - 60);

        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.TxnAsync(txn).ResponseAsync);
        var after = await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(prefix), RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)) });

        Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
        Assert.Contains("too large after encryption", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(before.Header.Revision, after.Header.Revision);
        Assert.Empty(after.Kvs);
    }

    [Fact]
    public async Task A_campaign_value_that_grows_too_large_once_encrypted_is_refused_and_nothing_is_written()
    {
        var name = ShieldedEtcd.NewPrefix("size-election") + "e";
        var lease = (await new Lease.LeaseClient(etcd.ProxyChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;

        var refusal = await Assert.ThrowsAsync<RpcException>(() => new Election.ElectionClient(etcd.ProxyChannel)
            .CampaignAsync(new CampaignRequest { Name = Utf8(name), Lease = lease, Value = Utf8(new string('c', 3990)) }).ResponseAsync);
        var stored = await etcd.EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(name + "/"), RangeEnd = Utf8(name + "0") });

        Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
        Assert.Contains("too large after encryption", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(stored.Kvs);
    }

    [Fact]
    public async Task A_value_whose_envelope_fits_is_written_and_read_back()
    {
        var key = ShieldedEtcd.NewPrefix("size-fits") + "k";
        var value = new string('f', 3800);

        await etcd.PutAsync(key, value);

        AssertSealed(await etcd.StoredAsync(key), value);
        Assert.Equal(value, await etcd.GetAsync(key));
    }

    [Fact]
    public async Task A_request_too_large_even_as_plaintext_gets_the_answer_etcd_gives()
    {
        var prefix = ShieldedEtcd.NewPrefix("size-plain");
        static PutRequest Request(string key) => new() { Key = Utf8(key), Value = Utf8(new string('p', 5000)) };

        var fromEtcd = await Assert.ThrowsAsync<RpcException>(() => etcd.EtcdKv.PutAsync(Request(prefix + "k")).ResponseAsync);
        var fromProxy = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.PutAsync(Request(prefix + "k")).ResponseAsync);

        Assert.Equal(fromEtcd.StatusCode, fromProxy.StatusCode);
        Assert.Equal(fromEtcd.Status.Detail, fromProxy.Status.Detail);
        Assert.Null(await etcd.StoredAsync(prefix + "k"));
    }

    [Fact]
    public async Task A_txn_of_ranges_alone_above_the_limit_is_served_as_etcd_serves_it_and_a_writing_one_is_refused_as_etcd_refuses_it()
    {
        // etcd serves a txn of ranges without raft and never measures it; one that writes goes through raft and is.
        var prefix = ShieldedEtcd.NewPrefix("size-readonly");
        await etcd.PutAsync(prefix + "k", "v");
        TxnRequest Reads(string extra)
        {
            var txn = new TxnRequest();
            txn.Success.Add(Enumerable.Range(0, 50).Select(i => new RequestOp { RequestRange = new RangeRequest { Key = Utf8(prefix + "k"), RangeEnd = Utf8(prefix + "k" + new string('~', 90) + i) } }));
            if (extra.Length > 0)
            {
                txn.Failure.Add(WritePathTests.Put(prefix + extra, "w"));
            }

            return txn;
        }

        Assert.True(Reads("").CalculateSize() > Limit);
        var fromEtcd = await etcd.EtcdKv.TxnAsync(Reads(""));
        var fromProxy = await etcd.ProxyKv.TxnAsync(Reads(""));
        var writeFromEtcd = await Assert.ThrowsAsync<RpcException>(() => etcd.EtcdKv.TxnAsync(Reads("w")).ResponseAsync);
        var writeFromProxy = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.TxnAsync(Reads("w")).ResponseAsync);

        Assert.Equal(fromEtcd.Responses.Count, fromProxy.Responses.Count);
        Assert.All(fromProxy.Responses, r => Assert.Equal("v", r.ResponseRange.Kvs.Single().Value.ToStringUtf8()));
        Assert.Equal((writeFromEtcd.StatusCode, writeFromEtcd.Status.Detail), (writeFromProxy.StatusCode, writeFromProxy.Status.Detail));
        Assert.Equal("etcdserver: request is too large", writeFromProxy.Status.Detail);
    }

    /// <summary>etcd and the proxy both at <c>--max-request-bytes 4096</c>.</summary>
    public sealed class SmallRequests : ShieldedEtcd
    {
        protected override IReadOnlyList<string> EtcdArguments => ["--max-request-bytes", "4096"];

        protected override IReadOnlyList<string> ShieldFlags => ["--max-request-bytes", "4096"];
    }
}
