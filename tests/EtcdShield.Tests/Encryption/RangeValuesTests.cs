using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Tests.Relay;
using static EtcdShield.Protocol.Etcdserverpb.RangeRequest.Types;
using static EtcdShield.Tests.Encryption.ValueHandlerBed;

namespace EtcdShield.Tests.Encryption;

/// <summary>
/// Range through the Range handler over sealed values: value sorts done on plaintext, with etcd's limit + 1 rule
/// for order NONE, so that kvs, count and more are exactly what etcd answers over the same plaintext.
/// </summary>
public sealed class RangeValuesTests : IDisposable
{
    private static readonly RangeRequest Prefix = new() { Key = Utf8("/k/"), RangeEnd = Utf8("/k0") };

    private readonly ValueHandlerBed _bed = new();

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task A_value_sort_with_a_limit_orders_the_plaintexts_and_says_more_and_count_as_etcd_does()
    {
        StoreKeys(("/k/1", "delta"), ("/k/2", "alpha"), ("/k/3", "echo"), ("/k/4", "charlie"), ("/k/5", "bravo"), ("/l", "aaa"));
        var request = Prefix.Clone();
        request.SortTarget = SortTarget.Value;
        request.SortOrder = SortOrder.Ascend;
        request.Limit = 2;

        var ascending = await RangeAsync(request);
        request.SortOrder = SortOrder.Descend;
        var descending = await RangeAsync(request);

        Assert.Equal([("/k/2", "alpha"), ("/k/5", "bravo")], Pairs(ascending));
        Assert.Equal([("/k/3", "echo"), ("/k/1", "delta")], Pairs(descending));
        Assert.All(new[] { ascending, descending }, r => Assert.Equal((5L, true), (r.Count, r.More)));
        // etcd was asked for every key of the range in key order (no limit, no sort), with values to sort on.
        Assert.All(_bed.Etcd.SentTo<RangeRequest>("KV/Range"), sent => Assert.Equal(Prefix, sent));
    }

    [Fact]
    public async Task A_value_sort_without_an_order_sorts_only_the_first_limit_plus_one_keys_as_etcd_does()
    {
        StoreKeys(("/k/1", "delta"), ("/k/2", "charlie"), ("/k/3", "echo"), ("/k/4", "alpha"));
        var request = Prefix.Clone();
        request.SortTarget = SortTarget.Value;
        request.Limit = 2;

        var response = await RangeAsync(request);

        // etcd reads /k/1../k/3 (limit + 1), sorts those ascending and keeps two: "alpha" under /k/4 is never seen.
        Assert.Equal([("/k/2", "charlie"), ("/k/1", "delta")], Pairs(response));
        Assert.Equal((4L, true), (response.Count, response.More));
        var sent = Assert.Single(_bed.Etcd.SentTo<RangeRequest>("KV/Range"));
        Assert.Equal((3L, SortOrder.None, SortTarget.Key), (sent.Limit, sent.SortOrder, sent.SortTarget));
    }

    [Fact]
    public async Task Keys_only_with_a_value_sort_reads_values_to_sort_on_and_returns_none()
    {
        StoreKeys(("/k/1", "b"), ("/k/2", "a"));
        var request = Prefix.Clone();
        request.SortTarget = SortTarget.Value;
        request.SortOrder = SortOrder.Descend;
        request.KeysOnly = true;

        var response = await RangeAsync(request);

        Assert.Equal([("/k/1", ""), ("/k/2", "")], Pairs(response));
        Assert.False(Assert.Single(_bed.Etcd.SentTo<RangeRequest>("KV/Range")).KeysOnly);
    }

    [Fact]
    public async Task A_range_without_a_value_sort_is_sent_to_etcd_as_the_client_sent_it()
    {
        StoreKeys(("/k/1", "b"), ("/k/2", "a"));
        var request = new RangeRequest { Key = Utf8("/k/"), RangeEnd = Utf8("/k0"), SortTarget = SortTarget.Mod, SortOrder = SortOrder.Descend, Limit = 1, KeysOnly = true };

        var response = await RangeAsync(request);

        Assert.Equal([("/k/2", "")], Pairs(response));
        Assert.Equal(request, Assert.Single(_bed.Etcd.SentTo<RangeRequest>("KV/Range")));
    }

    [Fact]
    public async Task Every_sort_limit_and_filter_answers_exactly_what_etcd_answers_over_the_plaintext()
    {
        var random = new Random(5);
        var plain = new InMemoryEtcd();
        for (var i = 0; i < 8; i++)
        {
            // Few distinct values, some empty: ties and empty plaintexts are where orders differ.
            var key = $"/k/{random.Next(10)}";
            var value = new string('a', random.Next(3)) + (char)('a' + random.Next(3));
            var stored = random.Next(4) == 0 ? "" : value;
            _bed.Store(key, stored);
            plain.Store.Put(key, stored);
        }

        foreach (var order in new[] { SortOrder.None, SortOrder.Ascend, SortOrder.Descend })
        {
            foreach (var limit in new long[] { 0, 1, 2, 3, 7, 8, 20 })
            {
                foreach (var (keysOnly, countOnly, minMod) in new[] { (false, false, 0L), (true, false, 0L), (false, true, 0L), (false, false, 5L) })
                {
                    var request = Prefix.Clone();
                    request.SortTarget = SortTarget.Value;
                    request.SortOrder = order;
                    request.Limit = limit;
                    request.KeysOnly = keysOnly;
                    request.CountOnly = countOnly;
                    request.MinModRevision = minMod;

                    var expected = plain.Store.Range(request.Clone());
                    var actual = await RangeAsync(request.Clone());

                    Assert.Equal(expected, actual);
                }
            }
        }
    }

    private async Task<RangeResponse> RangeAsync(RangeRequest request) => await _bed.CallAsync<RangeResponse>(_bed.Range, "KV/Range", request);

    private void StoreKeys(params (string Key, string Value)[] kvs)
    {
        foreach (var (key, value) in kvs)
        {
            _bed.Store(key, value);
        }
    }

    private static List<(string, string)> Pairs(RangeResponse response) =>
        [.. response.Kvs.Select(kv => (kv.Key.ToStringUtf8(), kv.Value.ToStringUtf8()))];
}
