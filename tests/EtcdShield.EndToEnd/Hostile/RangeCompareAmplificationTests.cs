using System.Globalization;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using static EtcdShield.Protocol.Etcdserverpb.Compare.Types;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A client that may only read one prefix sends a small txn of a hundred value compares, each on a range that
/// covers the whole prefix but with its own range_end, so that no two compares are alike. Deciding them on
/// plaintext must not cost one read of the prefix per compare: that would make etcd build, and the proxy receive
/// and decrypt, a response of a hundred copies of the prefix for a request of a few kilobytes. How much etcd sent is read
/// from etcd's own byte counter, around the proxy.
/// </summary>
public sealed class RangeCompareAmplificationTests(RangeCompareAmplificationTests.ReaderOfOnePrefix etcd) : IClassFixture<RangeCompareAmplificationTests.ReaderOfOnePrefix>
{
    private const int Keys = 64;
    private const int ValueBytes = 8 * 1024;
    private const int Compares = 100;

    [Fact]
    public async Task A_hundred_value_compares_over_one_readable_prefix_read_it_once()
    {
        var values = Enumerable.Range(0, Keys).Select(i => (Key: Key(i), Value: new string((char)('a' + (i % 26)), ValueBytes))).ToList();
        foreach (var (key, value) in values)
        {
            await etcd.PutAsync(key, value);
        }

        var txn = new TxnRequest();
        // Every range_end lies past every key of the prefix and inside the grant: each compare covers all of it.
        // As many as keep the guards (one per range, one witness) and the op within etcd's budget of 128.
        txn.Compare.Add(Enumerable.Range(0, Compares).Select(i => new Compare
        {
            Key = Utf8(ReaderOfOnePrefix.Prefix),
            RangeEnd = Utf8(string.Create(CultureInfo.InvariantCulture, $"{ReaderOfOnePrefix.Prefix}z{i:D3}")),
            Target = CompareTarget.Value,
            Result = CompareResult.Greater,
            Value = Utf8("a"),
        }));
        txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = Utf8(Key(0)), CountOnly = true } });
        var stored = Keys * ValueBytes;
        var before = await etcd.EtcdSentBytesAsync();

        var response = await etcd.ReaderKv.TxnAsync(txn);

        var sent = await etcd.EtcdSentBytesAsync() - before;
        // Every value is longer than "a" and starts at or above it, so every compare holds, as on plaintext.
        Assert.True(response.Succeeded);
        Assert.True(sent < 4 * stored, $"etcd sent {sent} bytes to decide compares over {stored} stored bytes");
    }

    [Fact]
    public async Task Overlapping_value_compared_ranges_are_decided_each_on_its_own_keys_as_etcd_decides_them()
    {
        var reference = await Reference.SeedAsync(etcd, "amplification-overlap", ("a", "1"), ("b", "5"), ("c", "9"), ("d", "3"));

        async Task<bool?> Decide(string from, string to, CompareResult result, string value)
        {
            var (proxy, plain) = await reference.TxnAsync(prefix => new TxnRequest
            {
                Compare =
                {
                    // A wider range on the same keys is read in the same txn, so the two reads overlap.
                    new Compare { Key = Utf8(prefix), RangeEnd = Utf8(prefix + "z"), Target = CompareTarget.Value, Result = CompareResult.Greater, Value = Utf8("0") },
                    new Compare { Key = Utf8(prefix + from), RangeEnd = to.Length == 0 ? ByteString.Empty : Utf8(prefix + to), Target = CompareTarget.Value, Result = result, Value = Utf8(value) },
                },
            });
            Assert.Equal(plain, proxy);
            return proxy.Succeeded;
        }

        Assert.True(await Decide("b", "d", CompareResult.Greater, "4"));
        Assert.False(await Decide("b", "e", CompareResult.Greater, "4"));
        Assert.True(await Decide("a", "c", CompareResult.Less, "6"));
        Assert.True(await Decide("c", "", CompareResult.Equal, "9"));
        Assert.False(await Decide("bb", "c", CompareResult.Equal, "5"));
        Assert.False(await Decide("c", "b", CompareResult.Equal, "9"));
    }

    private static string Key(int i) => string.Create(CultureInfo.InvariantCulture, $"{ReaderOfOnePrefix.Prefix}k{i:D3}");

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);

    /// <summary>An encrypting proxy whose policy lets the identity <c>reader</c> read one prefix.</summary>
    public sealed class ReaderOfOnePrefix : ReaderProxy
    {
        public const string Prefix = "/amplification/";

        /// <summary>What etcd has sent to its gRPC clients so far (its etcd_network_client_grpc_sent_bytes_total).</summary>
        internal Task<double> EtcdSentBytesAsync() => EtcdMetricAsync("etcd_network_client_grpc_sent_bytes_total ");

        protected override IEnumerable<string> ReadGrants => [$"prefix: {Prefix}"];
    }
}
