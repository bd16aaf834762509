using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using static EtcdShield.EndToEnd.Encryption.StoredValue;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// A proxy that encrypts only <c>/secret/</c> and <c>/legacy/</c>, with <c>/legacy/</c> open as a migration window:
/// plaintext that etcd already held there is returned (and counted) until rewritten through the proxy, while
/// plaintext under <c>/secret/</c> is refused and values outside both prefixes pass through untouched.
/// </summary>
public sealed class MigrationWindowTests(MigrationWindowTests.Window etcd) : IClassFixture<MigrationWindowTests.Window>
{
    [Fact]
    public async Task Plaintext_under_the_legacy_prefix_is_returned_as_is_and_counted()
    {
        var key = "/legacy" + ShieldedEtcd.NewPrefix("read") + "k";
        await etcd.PlantAsync(key, Utf8("legacy-plaintext-value"));
        var before = etcd.Meters.Total(ProxyMeters.LegacyPlaintextReads);

        var value = await etcd.GetAsync(key);

        Assert.Equal("legacy-plaintext-value", value);
        Assert.Equal(before + 1, etcd.Meters.Total(ProxyMeters.LegacyPlaintextReads));
    }

    [Fact]
    public async Task Plaintext_under_an_encrypted_prefix_outside_the_window_is_refused()
    {
        var key = "/secret" + ShieldedEtcd.NewPrefix("refused") + "k";
        await etcd.PlantAsync(key, Utf8("planted-secret-plaintext"));

        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(key));

        AssertDataLoss(refusal, key, "planted-secret-plaintext");
        Assert.EndsWith("value is not encrypted", refusal.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Writes_inside_the_window_are_encrypted_so_rewriting_through_the_proxy_migrates_a_value()
    {
        var prefix = "/legacy" + ShieldedEtcd.NewPrefix("migrate");
        await etcd.PlantAsync(prefix + "old", Utf8("not-yet-migrated"));
        await etcd.PutAsync(prefix + "new", "written-through-the-proxy");

        var before = await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(prefix), RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)) });
        await etcd.PutAsync(prefix + "old", before.Kvs[1].Value.ToStringUtf8());

        Assert.Equal(["written-through-the-proxy", "not-yet-migrated"], before.Kvs.Select(kv => kv.Value.ToStringUtf8()));
        AssertSealed(await etcd.StoredAsync(prefix + "new"), "written-through-the-proxy");
        AssertSealed(await etcd.StoredAsync(prefix + "old"), "not-yet-migrated");
        Assert.Equal("not-yet-migrated", await etcd.GetAsync(prefix + "old"));
    }

    [Fact]
    public async Task Inside_the_window_a_value_that_claims_to_be_an_envelope_must_still_open()
    {
        var prefix = "/legacy" + ShieldedEtcd.NewPrefix("claims");
        await etcd.PlantAsync(prefix + "malformed", ByteString.CopyFrom([.. EnvelopeMagic, .. "looks like an envelope"u8]));
        await etcd.PlantAsync(prefix + "version", ByteString.CopyFrom([0x45, 0x53, 0x48, 0x03, .. "a future version"u8]));
        await etcd.PutAsync(prefix + "moved-source", "sealed-elsewhere");
        await etcd.PlantAsync(prefix + "moved", (await etcd.StoredAsync(prefix + "moved-source"))!);

        var malformed = await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(prefix + "malformed"));
        var version = await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(prefix + "version"));
        var moved = await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(prefix + "moved"));

        AssertDataLoss(malformed, prefix + "malformed", "looks like an envelope");
        Assert.Contains("malformed envelope", malformed.Status.Detail, StringComparison.Ordinal);
        AssertDataLoss(version, prefix + "version", "a future version");
        Assert.Contains("unsupported envelope version", version.Status.Detail, StringComparison.Ordinal);
        AssertDataLoss(moved, prefix + "moved", "sealed-elsewhere");
    }

    [Fact]
    public async Task Watch_and_value_compares_inside_the_window_see_legacy_plaintext()
    {
        var prefix = "/legacy" + ShieldedEtcd.NewPrefix("watch");
        await using var watch = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest { Key = Utf8(prefix + "k"), PrevKv = true });
        await etcd.PlantAsync(prefix + "k", Utf8("legacy-one"));
        await etcd.PlantAsync(prefix + "k", Utf8(""));

        var events = await watch.ReadEventsAsync(2);
        var compare = await etcd.ProxyKv.TxnAsync(new TxnRequest
        {
            Compare = { new Compare { Key = Utf8(prefix + "k"), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = ByteString.Empty } },
            Success = { WritePathTests.Put(prefix + "k", "migrated-by-txn") },
        });

        Assert.Equal(["legacy-one", ""], events.Select(e => e.Kv.Value.ToStringUtf8()));
        Assert.Equal("legacy-one", events[1].PrevKv.Value.ToStringUtf8());
        Assert.True(compare.Succeeded);
        AssertSealed(await etcd.StoredAsync(prefix + "k"), "migrated-by-txn");
    }

    [Fact]
    public async Task Values_outside_the_encrypted_prefixes_are_stored_and_returned_as_sent()
    {
        var id = ShieldedEtcd.NewPrefix("scope");
        var txn = await etcd.ProxyKv.TxnAsync(new TxnRequest
        {
            Success =
            {
                WritePathTests.Put("/public" + id + "k", "public-plaintext"),
                WritePathTests.Put("/secret" + id + "k", "secret-value"),
                WritePathTests.Put("/secret" + id[1..^1], "a-sibling-of-the-prefix"),
            },
        });
        await etcd.PlantAsync("/public" + id + "looks-sealed", ByteString.CopyFrom([.. EnvelopeMagic, .. "not really"u8]));

        Assert.True(txn.Succeeded);
        Assert.Equal(Utf8("public-plaintext"), await etcd.StoredAsync("/public" + id + "k"));
        Assert.Equal(Utf8("a-sibling-of-the-prefix"), await etcd.StoredAsync("/secret" + id[1..^1]));
        AssertSealed(await etcd.StoredAsync("/secret" + id + "k"), "secret-value");
        Assert.Equal("public-plaintext", await etcd.GetAsync("/public" + id + "k"));
        Assert.Equal("secret-value", await etcd.GetAsync("/secret" + id + "k"));
        Assert.Equal("ESH\u0001not really", await etcd.GetAsync("/public" + id + "looks-sealed"));
    }

    /// <summary>Encrypts <c>/secret/</c> and <c>/legacy/</c>; <c>/legacy/</c> accepts plaintext already stored.</summary>
    public sealed class Window : ShieldedEtcd
    {
        protected override IReadOnlyList<string> ShieldFlags =>
            ["--encrypt-prefix", "/secret/", "--encrypt-prefix", "/legacy/", "--legacy-plaintext-prefix", "/legacy/"];
    }
}
