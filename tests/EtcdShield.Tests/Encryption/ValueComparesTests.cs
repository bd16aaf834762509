using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.Tests.Encryption;

/// <summary>Deciding value compares on a snapshot: etcd's outcome for every result, and work that does not grow with compares × keys.</summary>
public sealed class ValueComparesTests
{
    private static readonly CompareResult[] Results = [CompareResult.Equal, CompareResult.NotEqual, CompareResult.Greater, CompareResult.Less];

    [Fact]
    public void Compares_that_repeat_a_key_and_range_end_are_read_once_in_the_order_first_met()
    {
        var txn = new TxnRequest();
        txn.Compare.Add(Enumerable.Range(0, 65_000).Select(i => Compare($"/k{i % 3}", i % 2 == 0 ? "" : "/z", CompareResult.Equal, "v")));
        txn.Compare.Add(new Compare { Key = Utf8("/m"), Target = CompareTarget.Mod, ModRevision = 1 });
        txn.Success.Add(new RequestOp { RequestTxn = new TxnRequest { Compare = { Compare("/k0", "", CompareResult.Less, "w"), Compare("/n", "", CompareResult.Less, "w") } } });

        var compared = ValueCompares.Compared(txn).Select(r => (r.Key.ToStringUtf8(), r.RangeEnd.ToStringUtf8())).ToList();

        Assert.Equal([("/k0", ""), ("/k1", "/z"), ("/k2", ""), ("/k0", "/z"), ("/k1", ""), ("/k2", "/z"), ("/n", "")], compared);
    }

    [Fact]
    public void A_range_compare_is_decided_as_etcd_decides_it_on_every_key_for_every_result()
    {
        // Every value against every stored set: etcd's rule is that each key of the range satisfies the compare.
        var random = new Random(9);
        for (var round = 0; round < 300; round++)
        {
            var values = Enumerable.Range(0, random.Next(0, 6)).Select(_ => RandomValue(random)).ToList();
            var kvs = values.Select((v, i) => new KeyValue { Key = Utf8($"/r/{i}"), Value = v, ModRevision = 10 + i, Version = 1 }).ToList();
            foreach (var result in Results)
            {
                var against = RandomValue(random);
                var snapshot = new ValueCompares.CompareSnapshot(50);
                snapshot.Add(Utf8("/r/"), Utf8("/r0"), kvs);
                var compare = new Compare { Key = Utf8("/r/"), RangeEnd = Utf8("/r0"), Target = CompareTarget.Value, Result = result, Value = against };

                var expected = kvs.Count > 0 && kvs.All(kv => Holds(result, kv.Value.Span.SequenceCompareTo(against.Span)));

                Assert.Equal(expected, snapshot.Evaluate(compare));
                var guards = snapshot.Guards().ToList();
                if (kvs.Count > 0)
                {
                    // The witness guard pins a key that keeps the outcome: one that fails the compare when it is false.
                    var witness = guards.Single(g => g.RangeEnd.IsEmpty);
                    var pinned = kvs.Single(kv => kv.Key == witness.Key);
                    Assert.Equal(pinned.ModRevision, witness.ModRevision);
                    Assert.True(expected || !Holds(result, pinned.Value.Span.SequenceCompareTo(against.Span)));
                }
            }
        }
    }

    [Fact]
    public void Many_compares_on_a_large_range_pin_few_witnesses_from_the_range_summary()
    {
        var kvs = Enumerable.Range(0, 20_000).Select(i => new KeyValue { Key = Utf8($"/r/{i:D5}"), Value = Utf8($"v{i % 7}"), ModRevision = 5 + i, Version = 1 }).ToList();
        var snapshot = new ValueCompares.CompareSnapshot(30_000);
        snapshot.Add(Utf8("/r/"), Utf8("/r0"), kvs);

        var outcomes = Enumerable.Range(0, 5_000).Select(i => snapshot.Evaluate(Compare("/r/", "/r0", Results[i % 4], $"v{i % 9}"))).ToList();

        Assert.Contains(true, outcomes);
        Assert.Contains(false, outcomes);
        // Witnesses come from the range's summary (its smallest, its largest, the first key holding a value): 7 distinct here.
        Assert.InRange(snapshot.Guards().Count(), 2, 1 + 7);
    }

    [Fact]
    public async Task Overlapping_compared_ranges_are_read_once_and_each_decided_on_its_own_keys()
    {
        // Keys and bounds from a tiny alphabet, so that ranges overlap, touch, nest, run backwards and repeat.
        var random = new Random(11);
        for (var round = 0; round < 200; round++)
        {
            var etcd = new StoredKv(Enumerable.Range(0, random.Next(0, 8)).Select(_ => RandomKey(random)).Distinct()
                .Select(k => new KeyValue { Key = k, Value = RandomValue(random), ModRevision = 7, Version = 1 }));
            var ranges = Enumerable.Range(0, random.Next(1, 6)).Select(_ => (Key: RandomKey(random), RangeEnd: random.Next(4) switch
            {
                0 => ByteString.Empty,
                1 => ByteString.CopyFrom(0),
                _ => RandomKey(random),
            })).Distinct().ToList();

            var snapshot = await new ValueCompares(new KeyValueOpener(PassthroughValueProtector.Instance)).ReadAsync(ranges, new KV.KVClient(etcd), new CallOptions());

            Assert.InRange(etcd.KeysSent, 0, etcd.Count);
            foreach (var (key, rangeEnd) in ranges)
            {
                var against = RandomValue(random);
                var result = Results[random.Next(Results.Length)];
                var compared = etcd.Compared(key, rangeEnd);
                var expected = compared.Count > 0 && compared.All(kv => Holds(result, kv.Value.Span.SequenceCompareTo(against.Span)));
                Assert.Equal(expected, snapshot.Evaluate(new Compare { Key = key, RangeEnd = rangeEnd, Target = CompareTarget.Value, Result = result, Value = against }));
            }
        }
    }

    private static bool Holds(CompareResult result, int order) => result switch
    {
        CompareResult.Equal => order == 0,
        CompareResult.NotEqual => order != 0,
        CompareResult.Greater => order > 0,
        _ => order < 0,
    };

    private static ByteString RandomValue(Random random) =>
        ByteString.CopyFrom(Enumerable.Range(0, random.Next(0, 3)).Select(_ => (byte)random.Next(0, 3)).ToArray());

    private static Compare Compare(string key, string rangeEnd, CompareResult result, string value) =>
        new() { Key = Utf8(key), RangeEnd = Utf8(rangeEnd), Target = CompareTarget.Value, Result = result, Value = Utf8(value) };

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);

    private static ByteString RandomKey(Random random) =>
        ByteString.CopyFrom(Enumerable.Range(0, random.Next(1, 3)).Select(_ => (byte)random.Next(0, 3)).ToArray());

    /// <summary>etcd's KV.Txn of ranges over a fixed store, with etcd's range rules; counts the keys it sends.</summary>
    private sealed class StoredKv(IEnumerable<KeyValue> kvs) : CallInvoker
    {
        private readonly List<KeyValue> _kvs = kvs.ToList();

        public int Count => _kvs.Count;

        public int KeysSent { get; private set; }

        /// <summary>What etcd compares for (key, range_end): the key alone, every key from it ("\0"), or [key, range_end).</summary>
        public List<KeyValue> Compared(ByteString key, ByteString rangeEnd) => _kvs.Where(kv =>
            rangeEnd.IsEmpty ? kv.Key == key
            : rangeEnd.Length == 1 && rangeEnd[0] == 0 ? kv.Key.Span.SequenceCompareTo(key.Span) >= 0
            : kv.Key.Span.SequenceCompareTo(key.Span) >= 0 && kv.Key.Span.SequenceCompareTo(rangeEnd.Span) < 0).ToList();

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        {
            var txn = Assert.IsType<TxnRequest>(request);
            var response = new TxnResponse { Header = new ResponseHeader { Revision = 9 }, Succeeded = true };
            foreach (var op in txn.Success)
            {
                var found = Compared(op.RequestRange.Key, op.RequestRange.RangeEnd).OrderBy(kv => kv.Key, Comparer<ByteString>.Create((a, b) => a.Span.SequenceCompareTo(b.Span))).Select(kv => kv.Clone()).ToList();
                KeysSent += found.Count;
                response.Responses.Add(new ResponseOp { ResponseRange = new RangeResponse { Kvs = { found } } });
            }

            return new AsyncUnaryCall<TResponse>(
                Task.FromResult((TResponse)(object)response), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
        }

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();
    }
}
