using System.Text;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using static EtcdShield.EndToEnd.Encryption.StoredValue;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// Someone with write access to etcd (but not to the key-encryption key) changes stored values. Whatever they
/// do, the proxy answers DATA_LOSS naming the key and never the value, counts and logs it, returns nothing
/// that looks like plaintext, and keeps serving: on Range, Watch, Txn (ops and value compares), DeleteRange and
/// Put prev_kv, and Election Leader.
/// </summary>
public sealed class TamperTests(TamperTests.Proxies etcd) : IClassFixture<TamperTests.Proxies>
{
    private static readonly string Protector = typeof(EtcdShield.Encryption.ValueProtector).FullName!;

    /// <summary>Each tampering, and the reason the proxy must give for it (the reason label of the metric).</summary>
    public static TheoryData<string, string> Tamperings() => new()
    {
        { "moved-from-another-key", "authentication_failed" },
        { "flipped-magic", "not_encrypted" },
        { "flipped-version", "unsupported_version" },
        { "flipped-key-id-length", "malformed" },
        { "flipped-key-id", "authentication_failed" },
        // Keys are cached by their whole wrapping, so another KEK id is looked up as such, whatever data key it names.
        { "flipped-kek-id", "unknown_key" },
        { "flipped-wrapped-dek", "authentication_failed" },
        { "flipped-nonce", "authentication_failed" },
        { "flipped-ciphertext", "authentication_failed" },
        { "flipped-tag", "authentication_failed" },
        { "truncated-by-one-byte", "authentication_failed" },
        { "truncated-inside-the-header", "malformed" },
        { "extended-by-one-byte", "authentication_failed" },
        { "planted-plaintext", "not_encrypted" },
        { "planted-empty-value", "not_encrypted" },
        { "unknown-kek-id", "unknown_key" },
        { "unknown-kek-id-and-data-key-id", "unknown_key" },
        { "sealed-by-a-proxy-with-another-key", "unknown_key" },
    };

    [Theory]
    [MemberData(nameof(Tamperings))]
    public async Task A_tampered_value_is_refused_on_range_with_data_loss_naming_the_key_only(string tampering, string reason)
    {
        var prefix = ShieldedEtcd.NewPrefix("tamper");
        var key = prefix + "victim";
        var plaintext = "tamper-secret-" + tampering;
        await etcd.PutAsync(prefix + "intact", "intact-value");
        var failuresBefore = etcd.Meters.Total(ProxyMeters.DecryptFailures, reason);
        await PlantTamperedAsync(tampering, key, plaintext);

        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(key) }).ResponseAsync);
        var prefixRange = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(prefix), RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)) }).ResponseAsync);
        var logged = await etcd.Shield.Logs.WaitForAsync(e => (e.Is(Protector, "DecryptFailed") || e.Is(Protector, "PlaintextRefused")) && e.Message.Contains(key, StringComparison.Ordinal), TimeSpan.FromSeconds(5));

        Assert.Equal(failuresBefore + 2, etcd.Meters.Total(ProxyMeters.DecryptFailures, reason));
        AssertDataLoss(refusal, key, plaintext, "planted plaintext");
        AssertDataLoss(prefixRange, key, plaintext, "planted plaintext");
        Assert.Equal(reason == "not_encrypted" ? "PlaintextRefused" : "DecryptFailed", logged.EventId.Name);
        Assert.Equal(LogLevel.Warning, logged.Level);
        if (logged.EventId.Name == "DecryptFailed")
        {
            Assert.Contains(new KeyValuePair<string, object?>("Reason", reason), logged.Properties);
        }

        AssertNeverLogged(plaintext);
        Assert.Equal("intact-value", await etcd.GetAsync(prefix + "intact"));
    }

    [Fact]
    public async Task A_moved_value_is_refused_under_its_new_key_while_the_original_still_reads()
    {
        var prefix = ShieldedEtcd.NewPrefix("moved");
        await etcd.PutAsync(prefix + "a", "value-of-a");
        await etcd.PutAsync(prefix + "b", "value-of-b");

        await etcd.PlantAsync(prefix + "b", (await etcd.StoredAsync(prefix + "a"))!);

        var refusal = await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(prefix + "b"));
        AssertDataLoss(refusal, prefix + "b", "value-of-a", "value-of-b");
        Assert.EndsWith("authentication failed", refusal.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("value-of-a", await etcd.GetAsync(prefix + "a"));
    }

    [Fact]
    public async Task A_watch_ends_with_data_loss_at_a_tampered_event_after_delivering_the_intact_ones()
    {
        var prefix = ShieldedEtcd.NewPrefix("tamper-watch");
        var key = prefix + "k";
        await using var live = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest { Key = Utf8(key), PrevKv = true });
        var first = await etcd.PutAsync(key, "intact-before-tampering");

        var plantedAt = await PlantTamperedAsync("flipped-ciphertext", key, "tampered-in-watch");
        var liveFailure = await live.ReadUntilFailureAsync();
        await using var replay = await WatchStream.OpenAsync(etcd.ProxyChannel, new WatchCreateRequest { Key = Utf8(key), StartRevision = first.Header.Revision });
        var replayFailure = await replay.ReadUntilFailureAsync();

        AssertDataLoss(liveFailure, key, "tampered-in-watch");
        AssertDataLoss(replayFailure, key, "tampered-in-watch");
        // Events before the tampered one may or may not have been delivered (etcd batches revisions as it
        // likes), but nothing at or after it ever is, and what was delivered is what the proxy sealed.
        Assert.All(live.Responses.Concat(replay.Responses).SelectMany(r => r.Events), e =>
        {
            Assert.True(e.Kv.ModRevision < plantedAt);
            Assert.Contains(e.Kv.Value.ToStringUtf8(), new[] { "intact-before-tampering", "tampered-in-watch" });
        });
        await etcd.PutAsync(prefix + "after", "still-serving");
        Assert.Equal("still-serving", await etcd.GetAsync(prefix + "after"));
    }

    [Fact]
    public async Task A_txn_reading_a_tampered_value_is_refused_and_a_value_compare_on_it_writes_nothing()
    {
        var prefix = ShieldedEtcd.NewPrefix("tamper-txn");
        var key = prefix + "k";
        await PlantTamperedAsync("flipped-tag", key, "tampered-in-txn");

        var read = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.TxnAsync(new TxnRequest
        {
            Success = { new RequestOp { RequestRange = new RangeRequest { Key = Utf8(prefix), RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)) } } },
        }).ResponseAsync);
        var compare = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.TxnAsync(new TxnRequest
        {
            Compare = { new Compare { Key = Utf8(key), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.NotEqual, Value = Utf8("anything") } },
            Success = { WritePathTests.Put(prefix + "written-on-success", "no") },
            Failure = { WritePathTests.Put(prefix + "written-on-failure", "no") },
        }).ResponseAsync);

        AssertDataLoss(read, key, "tampered-in-txn");
        AssertDataLoss(compare, key, "tampered-in-txn");
        Assert.Null(await etcd.StoredAsync(prefix + "written-on-success"));
        Assert.Null(await etcd.StoredAsync(prefix + "written-on-failure"));
    }

    [Fact]
    public async Task Delete_and_put_returning_a_tampered_previous_value_answer_data_loss_though_etcd_applied_them()
    {
        var prefix = ShieldedEtcd.NewPrefix("tamper-prev");
        await PlantTamperedAsync("flipped-ciphertext", prefix + "deleted", "tampered-deleted");
        await PlantTamperedAsync("planted-plaintext", prefix + "overwritten", "tampered-overwritten");

        var delete = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8(prefix + "deleted"), PrevKv = true }).ResponseAsync);
        var put = await Assert.ThrowsAsync<RpcException>(() => etcd.PutAsync(prefix + "overwritten", "fresh-value", prevKv: true));

        AssertDataLoss(delete, prefix + "deleted", "tampered-deleted");
        AssertDataLoss(put, prefix + "overwritten", "tampered-overwritten");
        // etcd ran both before the proxy could look at the previous values: only the answers are refused.
        Assert.Null(await etcd.StoredAsync(prefix + "deleted"));
        Assert.Equal("fresh-value", await etcd.GetAsync(prefix + "overwritten"));
    }

    [Fact]
    public async Task Keys_only_and_count_only_ranges_still_list_a_tampered_key_because_they_carry_no_value()
    {
        var prefix = ShieldedEtcd.NewPrefix("tamper-keys");
        await etcd.PutAsync(prefix + "a", "intact");
        await PlantTamperedAsync("flipped-nonce", prefix + "b", "tampered-listed");

        var keys = await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(prefix), RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)), KeysOnly = true });
        var count = await etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(prefix), RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)), CountOnly = true });
        var sorted = await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(prefix), RangeEnd = Utf8(WritePathTests.PrefixEnd(prefix)), KeysOnly = true, SortTarget = RangeRequest.Types.SortTarget.Value }).ResponseAsync);

        Assert.Equal([prefix + "a", prefix + "b"], keys.Kvs.Select(kv => kv.Key.ToStringUtf8()));
        Assert.All(keys.Kvs, kv => Assert.True(kv.Value.IsEmpty));
        Assert.Equal(2, count.Count);
        AssertDataLoss(sorted, prefix + "b", "tampered-listed");
    }

    [Fact]
    public async Task A_tampered_election_value_is_refused_by_leader()
    {
        var name = ShieldedEtcd.NewPrefix("tamper-election") + "e";
        var lease = (await new Lease.LeaseClient(etcd.ProxyChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
        var election = new Election.ElectionClient(etcd.ProxyChannel);
        var campaign = await election.CampaignAsync(new CampaignRequest { Name = Utf8(name), Lease = lease, Value = Utf8("leader-value") });
        var stored = (await etcd.StoredAsync(campaign.Leader.Key.ToStringUtf8()))!.ToByteArray();
        stored[^1] ^= 0x01;
        await etcd.EtcdKv.PutAsync(new PutRequest { Key = campaign.Leader.Key, Value = ByteString.CopyFrom(stored), IgnoreLease = true });

        var refusal = await Assert.ThrowsAsync<RpcException>(() => election.LeaderAsync(new LeaderRequest { Name = Utf8(name) }).ResponseAsync);

        AssertDataLoss(refusal, campaign.Leader.Key.ToStringUtf8(), "leader-value");
    }

    private void AssertNeverLogged(string plaintext) =>
        Assert.DoesNotContain(etcd.Shield.Logs.Entries, e => e.ToString().Contains(plaintext, StringComparison.Ordinal));

    /// <summary>Writes <paramref name="plaintext"/> at <paramref name="key"/> through the proxy (or another proxy), then
    /// replaces what etcd stores with the tampered form. Returns the revision of the tampered write.</summary>
    private async Task<long> PlantTamperedAsync(string tampering, string key, string plaintext)
    {
        if (tampering == "planted-plaintext")
        {
            return await etcd.PlantAsync(key, Utf8("planted plaintext " + plaintext));
        }

        if (tampering == "planted-empty-value")
        {
            return await etcd.PlantAsync(key, ByteString.Empty);
        }

        if (tampering == "sealed-by-a-proxy-with-another-key")
        {
            await new KV.KVClient(etcd.ForeignChannel).PutAsync(new PutRequest { Key = Utf8(key), Value = Utf8(plaintext) });
            var foreign = await etcd.StoredAsync(key);
            AssertSealed(foreign, plaintext);
            return await etcd.PlantAsync(key, foreign!);
        }

        if (tampering == "moved-from-another-key")
        {
            await etcd.PutAsync(key + "-original", plaintext);
            return await etcd.PlantAsync(key, (await etcd.StoredAsync(key + "-original"))!);
        }

        await etcd.PutAsync(key, plaintext);
        var envelope = (await etcd.StoredAsync(key))!.ToByteArray();
        var kekIdLength = envelope[21];
        var wrappedLength = (envelope[22 + kekIdLength] << 8) | envelope[23 + kekIdLength];
        var headerLength = 24 + kekIdLength + wrappedLength + 12;
        byte[] tampered = tampering switch
        {
            "flipped-magic" => Flip(envelope, 0),
            "flipped-version" => Flip(envelope, 3),
            "flipped-key-id-length" => Flip(envelope, 4),
            "flipped-key-id" => Flip(envelope, 5 + 7),
            "flipped-kek-id" => Flip(envelope, 22 + 1),
            "flipped-wrapped-dek" => Flip(envelope, 24 + kekIdLength + 3),
            "flipped-nonce" => Flip(envelope, headerLength - 1),
            "flipped-ciphertext" => Flip(envelope, headerLength + 2),
            "flipped-tag" => Flip(envelope, envelope.Length - 1),
            "truncated-by-one-byte" => envelope[..^1],
            "truncated-inside-the-header" => envelope[..30],
            "extended-by-one-byte" => [.. envelope, 0x00],
            "unknown-kek-id" => WithKekId(envelope, kekIdLength),
            "unknown-kek-id-and-data-key-id" => Flip(WithKekId(envelope, kekIdLength), 5 + 7),
            _ => throw new ArgumentOutOfRangeException(nameof(tampering), tampering, "unknown tampering"),
        };
        return await etcd.PlantAsync(key, ByteString.CopyFrom(tampered));
    }

    private static byte[] Flip(byte[] envelope, int offset)
    {
        var copy = (byte[])envelope.Clone();
        copy[offset] ^= 0x01;
        return copy;
    }

    /// <summary>The same envelope claiming a KEK id of the same length that no proxy has: "file:" and zeros.</summary>
    private static byte[] WithKekId(byte[] envelope, int kekIdLength)
    {
        var copy = (byte[])envelope.Clone();
        var kekId = Encoding.ASCII.GetString(copy, 22, kekIdLength);
        Assert.StartsWith("file:", kekId, StringComparison.Ordinal);
        var forged = Encoding.ASCII.GetBytes("file:" + new string('0', kekIdLength - 5));
        forged.CopyTo(copy, 22);
        return copy;
    }

    /// <summary>The encrypting proxy under test, and a second proxy on the same etcd with a key file of its own.</summary>
    public sealed class Proxies : ShieldedEtcd
    {
        private GrpcChannel? _foreignChannel;
        private ShieldServer? _foreign;

        internal GrpcChannel ForeignChannel => _foreignChannel ?? throw new InvalidOperationException("The fixture has not started.");

        protected override async Task OnStartedAsync()
        {
            _foreign = await ShieldServer.StartAsync(Pki, Etcd.ClientUrl);
            _foreignChannel = GrpcChannels.ToProxy(_foreign, Pki);
        }

        protected override async ValueTask OnStoppingAsync()
        {
            _foreignChannel?.Dispose();
            if (_foreign is not null)
            {
                await _foreign.DisposeAsync();
            }
        }
    }
}
