using System.Globalization;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A client that may read one key sends transactions shaped to make the proxy work per compare: tens of
/// thousands of value compares in one request under the size limit, or a txn etcd refuses anyway. The proxy
/// must answer as etcd would, at once, without reading or decrypting anything and without reaching etcd.
/// Whether etcd was reached is read from etcd's own gRPC counters, around the proxy.
/// </summary>
public sealed class QuadraticTxnTests(QuadraticTxnTests.ReaderOfOneKey etcd) : IClassFixture<QuadraticTxnTests.ReaderOfOneKey>
{
    private const string TooManyOps = "etcdserver: too many operations in txn request";
    private const string DuplicateKey = "etcdserver: duplicate key given in txn request";

    [Fact]
    public async Task Sixty_five_thousand_value_compares_on_one_readable_key_are_refused_at_once_with_etcds_answer()
    {
        // A range_end at or before the key names the key alone (etcd reads nothing there), so reading the one
        // key is all the policy asks; every range_end differs, so no two compares look alike.
        await etcd.PutAsync(ReaderOfOneKey.ReadableKey, "s");
        var txn = new TxnRequest();
        txn.Compare.Add(Enumerable.Range(0, 65_000).Select(i => new Compare
        {
            Key = Utf8(ReaderOfOneKey.ReadableKey),
            RangeEnd = Utf8(string.Create(CultureInfo.InvariantCulture, $"/{i:D5}")),
            Target = CompareTarget.Value,
            Result = CompareResult.Equal,
            Value = Utf8("s"),
        }));
        txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = Utf8(ReaderOfOneKey.ReadableKey) } });
        Assert.True(txn.CalculateSize() < ShieldOptionsLimit, "the attack fits etcd's request limit");
        var (txnsBefore, revisionBefore) = await etcd.EtcdTxnsAndRevisionAsync();

        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.ReaderKv.TxnAsync(txn).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, refusal.StatusCode);
        Assert.Equal(TooManyOps, refusal.Status.Detail);
        Assert.Equal((txnsBefore, revisionBefore), await etcd.EtcdTxnsAndRevisionAsync());
    }

    [Fact]
    public async Task A_txn_that_writes_one_key_twice_is_refused_with_etcds_answer_before_its_compares_are_read()
    {
        await etcd.PutAsync(ReaderOfOneKey.ReadableKey, "s");
        var prefix = ShieldedEtcd.NewPrefix("quadratic-dup");
        var txn = new TxnRequest
        {
            Compare = { ValueEquals(ReaderOfOneKey.ReadableKey, "s") },
            Success = { WritePathTests.Put(prefix + "k", "one"), WritePathTests.Put(prefix + "k", "two") },
        };
        var (txnsBefore, revisionBefore) = await etcd.EtcdTxnsAndRevisionAsync();

        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.TxnAsync(txn).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, refusal.StatusCode);
        Assert.Equal(DuplicateKey, refusal.Status.Detail);
        Assert.Equal((txnsBefore, revisionBefore), await etcd.EtcdTxnsAndRevisionAsync());
    }

    [Theory]
    [InlineData("m", true)]
    [InlineData("x", false)]
    public async Task A_txn_of_exactly_max_txn_ops_value_compares_answers_as_etcd_does_on_plaintext(string compared, bool holds)
    {
        var reference = await Reference.SeedAsync(etcd, "quadratic-limit", ("k", "m"), ("other", "o"));

        var (proxy, plain) = await reference.TxnAsync(prefix =>
        {
            var txn = new TxnRequest
            {
                Success = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8(prefix + "k") } }, WritePathTests.Put(prefix + "other", "then") },
                Failure = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8(prefix + "other") } } },
            };
            // 127 compares that hold, and the one the case decides.
            txn.Compare.Add(Enumerable.Range(0, ReaderOfOneKey.MaxTxnOps - 1).Select(_ => ValueEquals(prefix + "k", "m")));
            txn.Compare.Add(ValueEquals(prefix + "k", compared));
            return txn;
        });

        Assert.Equal(plain, proxy);
        Assert.Equal(holds, proxy.Succeeded);
        Assert.Equal(holds ? "then" : "o", await etcd.GetAsync(reference.Encrypted + "other"));
    }

    [Fact]
    public async Task One_more_compare_than_max_txn_ops_is_refused_as_etcd_refuses_it_on_plaintext()
    {
        var reference = await Reference.SeedAsync(etcd, "quadratic-over", ("k", "m"));
        TxnRequest Build(string prefix)
        {
            var txn = new TxnRequest();
            txn.Compare.Add(Enumerable.Range(0, ReaderOfOneKey.MaxTxnOps + 1).Select(_ => ValueEquals(prefix + "k", "m")));
            return txn;
        }

        var plain = await Assert.ThrowsAsync<RpcException>(() => etcd.EtcdKv.TxnAsync(Build(reference.Plain)).ResponseAsync);
        var proxy = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.TxnAsync(Build(reference.Encrypted)).ResponseAsync);

        Assert.Equal((plain.StatusCode, plain.Status.Detail), (proxy.StatusCode, proxy.Status.Detail));
        Assert.Equal(TooManyOps, proxy.Status.Detail);
    }

    [Fact]
    public async Task A_txn_over_many_granted_keys_is_decided_on_every_key_and_the_one_key_not_granted_is_named()
    {
        // The reader holds thousands of single-key grants; a full txn touches 128 of them in compares and ops.
        var keys = Enumerable.Range(0, ReaderOfOneKey.MaxTxnOps).Select(i => ReaderOfOneKey.GrantedKey(i * 31)).ToList();
        static TxnRequest Touching(IReadOnlyList<string> touched)
        {
            var txn = new TxnRequest();
            txn.Compare.Add(touched.Select(k => new Compare { Key = Utf8(k), Target = CompareTarget.Version, Result = CompareResult.Greater, Version = -1 }));
            txn.Success.Add(touched.Select(k => new RequestOp { RequestRange = new RangeRequest { Key = Utf8(k) } }));
            return txn;
        }

        var allowed = await etcd.ReaderKv.TxnAsync(Touching(keys));
        var forbidden = keys.Take(keys.Count - 1).Append(ReaderOfOneKey.NotGrantedKey).ToList();
        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.ReaderKv.TxnAsync(Touching(forbidden)).ResponseAsync);

        Assert.True(allowed.Succeeded);
        Assert.Equal(keys.Count, allowed.Responses.Count);
        Assert.Equal(StatusCode.PermissionDenied, refusal.StatusCode);
        Assert.Contains($"may not read key \"{ReaderOfOneKey.NotGrantedKey}\"", refusal.Status.Detail, StringComparison.Ordinal);
    }

    private const int ShieldOptionsLimit = 1_572_864;

    private static Compare ValueEquals(string key, string value) =>
        new() { Key = Utf8(key), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = Utf8(value) };

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);

    /// <summary>
    /// An encrypting proxy whose policy lets the identity <c>reader</c> read one key (and, for the authorization
    /// walk, thousands of other single keys), with etcd's default --max-txn-ops on both.
    /// </summary>
    public sealed class ReaderOfOneKey : ReaderProxy
    {
        public const string ReadableKey = "/q";
        public const string NotGrantedKey = "/quadratic/granted/not";
        private const int Grants = 4000;

        public static string GrantedKey(int i) => string.Create(CultureInfo.InvariantCulture, $"/quadratic/granted/{i:D5}");

        /// <summary>etcd's count of Txn calls it has started (its go-grpc-prometheus counter) and its current revision.</summary>
        internal async Task<(double Txns, long Revision)> EtcdTxnsAndRevisionAsync()
        {
            var txns = await EtcdMetricAsync("grpc_server_started_total{", "grpc_method=\"Txn\"", "grpc_service=\"etcdserverpb.KV\"");
            var revision = (await EtcdKv.RangeAsync(new RangeRequest { Key = Utf8(ReadableKey), CountOnly = true })).Header.Revision;
            return (txns, revision);
        }

        protected override IEnumerable<string> ReadGrants =>
            Enumerable.Range(0, Grants).Select(i => $"key: {GrantedKey(i)}").Prepend($"key: {ReadableKey}");
    }
}
