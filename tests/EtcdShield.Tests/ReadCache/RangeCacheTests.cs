using System.Diagnostics.Metrics;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.ReadCache;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace EtcdShield.Tests.ReadCache;

/// <summary>The freshness rules of <see cref="RangeCache"/>, in revisions, without a watch: the test plays it.</summary>
public sealed class RangeCacheTests
{
    private readonly IMeterFactory _meters = TestMeterFactory.Create();
    private readonly ReadCacheMetrics _metrics;

    public RangeCacheTests() => _metrics = new ReadCacheMetrics(_meters);

    [Fact]
    public void Nothing_is_served_before_the_watch_is_up_and_a_fill_is_served_after()
    {
        var cache = new RangeCache(1 << 20, _metrics);
        Fill(cache, "/a", revision: 5);
        Assert.Null(Get(cache, "/a"));

        cache.Established(5);
        Fill(cache, "/a", revision: 5);

        Assert.Equal("v@5", Value(Get(cache, "/a")));
    }

    [Fact]
    public void A_change_of_the_key_removes_its_single_key_and_range_entries_and_no_other()
    {
        var cache = Up(5);
        Fill(cache, "/a", revision: 5);
        Fill(cache, "/b", revision: 5);
        Fill(cache, "/a", revision: 5, rangeEnd: "/b");
        Fill(cache, "/b", revision: 5, rangeEnd: "/c");
        Fill(cache, "/", revision: 5, rangeEnd: "\0");

        cache.Observed(Events(("/a", 6)), 6);

        Assert.Null(Get(cache, "/a"));
        Assert.Null(Get(cache, "/a", rangeEnd: "/b"));
        Assert.Null(Get(cache, "/", rangeEnd: "\0"));
        Assert.NotNull(Get(cache, "/b"));
        Assert.NotNull(Get(cache, "/b", rangeEnd: "/c"));
    }

    [Fact]
    public void A_large_batch_of_events_removes_the_range_entries_holding_any_of_its_keys_and_no_other()
    {
        var cache = Up(5);
        Fill(cache, "/a/", revision: 5, rangeEnd: "/a0");
        Fill(cache, "/b/", revision: 5, rangeEnd: "/b0");
        Fill(cache, "/c", revision: 5, rangeEnd: "\0");
        Fill(cache, "/", revision: 5, rangeEnd: "/a");
        Fill(cache, "/b/7", revision: 5);
        Fill(cache, "/b/x", revision: 5);
        // A range delete of many keys: /b/0 to /b/9 and, past every range but the from-key one, /d/0 to /d/9.
        var changes = Enumerable.Range(0, 10).SelectMany(i => new[] { ($"/d/{i}", 6L), ($"/b/{i}", 6L) }).ToArray();

        cache.Observed(Events(changes), 6);

        Assert.Null(Get(cache, "/b/", rangeEnd: "/b0"));
        Assert.Null(Get(cache, "/c", rangeEnd: "\0"));
        Assert.Null(Get(cache, "/b/7"));
        Assert.NotNull(Get(cache, "/a/", rangeEnd: "/a0"));
        Assert.NotNull(Get(cache, "/", rangeEnd: "/a"));
        Assert.NotNull(Get(cache, "/b/x"));
    }

    [Fact]
    public void A_change_at_or_below_the_entry_s_revision_is_already_in_it()
    {
        var cache = Up(5);
        Fill(cache, "/a", revision: 7);
        cache.Observed(Events(("/a", 7)), 7);

        Assert.Equal("v@7", Value(Get(cache, "/a")));
    }

    [Fact]
    public void An_entry_read_ahead_of_the_watch_is_served_only_once_the_watch_has_caught_up_to_it()
    {
        var cache = Up(5);
        Fill(cache, "/a", revision: 8);
        Assert.Null(Get(cache, "/a"));

        cache.Observed(Events(("/other", 8)), 8);

        Assert.Equal("v@8", Value(Get(cache, "/a")));
    }

    [Fact]
    public void A_fill_is_not_kept_when_the_watch_applied_a_change_above_its_revision_while_it_was_in_flight()
    {
        var cache = Up(5);
        Assert.Null(cache.TryGet(Key("/a"), out var generation));
        // etcd answered at 5; before the answer is stored, the watch delivers a change of /a at 6.
        cache.Observed(Events(("/a", 6)), 6);

        cache.Store(Key("/a"), Request("/a"), Response("/a", 5), generation);

        Assert.Null(Get(cache, "/a"));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void A_fill_is_not_kept_when_the_watch_was_lost_or_opened_again_while_it_was_in_flight()
    {
        var cache = Up(5);
        Assert.Null(cache.TryGet(Key("/a"), out var generation));
        cache.Lost();
        cache.Established(5);

        cache.Store(Key("/a"), Request("/a"), Response("/a", 5), generation);

        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void A_write_through_the_proxy_removes_the_key_at_once_and_a_fill_read_before_it_is_not_kept()
    {
        var cache = Up(5);
        Fill(cache, "/a", revision: 5);
        Assert.Null(cache.TryGet(Key("/b"), out var beforeWrite));

        cache.Wrote([new WrittenRange(Bytes("/a"), ByteString.Empty)], 6);
        // A read of /b that etcd answered at 5 arrives after the write at 6 was applied.
        cache.Store(Key("/b"), Request("/b"), Response("/b", 5), beforeWrite);

        Assert.Null(Get(cache, "/a"));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void A_range_delete_through_the_proxy_removes_the_entries_it_overlaps()
    {
        var cache = Up(5);
        Fill(cache, "/a/1", revision: 5);
        Fill(cache, "/b/1", revision: 5);
        Fill(cache, "/", revision: 5, rangeEnd: "/b");
        Fill(cache, "/b/", revision: 5, rangeEnd: "/b0");

        cache.Wrote([new WrittenRange(Bytes("/a/"), Bytes("/a0"))], 6);

        Assert.Null(Get(cache, "/a/1"));
        Assert.Null(Get(cache, "/", rangeEnd: "/b"));
        Assert.NotNull(Get(cache, "/b/1"));
        Assert.NotNull(Get(cache, "/b/", rangeEnd: "/b0"));
    }

    [Fact]
    public void A_write_whose_keys_are_unnamed_holds_serving_back_until_the_watch_has_delivered_its_revision()
    {
        var cache = Up(5);
        Fill(cache, "/a", revision: 5);

        cache.WroteUnnamed(6);
        Assert.Null(Get(cache, "/a"));

        cache.Observed(Events(("/lease-key", 6)), 6);
        Assert.NotNull(Get(cache, "/a"));
    }

    [Fact]
    public void A_catch_up_batch_cut_short_by_etcd_moves_the_position_only_to_its_last_event()
    {
        var cache = Up(5);
        Fill(cache, "/a", revision: 5);
        // A lease revoked through the proxy deleted /a at 1500.
        cache.WroteUnnamed(1500);

        // The watch had fallen behind (unsynced). etcd 3.4's syncWatchers sends at most 1,000 revisions per batch
        // (watchBatchMaxRevs) but stamps the batch with the store's revision, here 2000: /a's delete at 1500 is in
        // the next batch, so the watch has not delivered 1500 yet.
        cache.Observed(Events(("/other", 6), ("/other", 1005)), 2000);

        Assert.Null(Get(cache, "/a"));
    }

    [Fact]
    public void A_fragment_moves_the_position_only_below_its_last_event_s_revision()
    {
        var cache = Up(5);
        Fill(cache, "/a", revision: 5);
        // A lease revoked through the proxy deleted /a and /b at 6; etcd split the revision's events in fragments.
        cache.WroteUnnamed(6);

        cache.Observed(Events(("/b", 6)), 6, fragment: true);
        Assert.Null(Get(cache, "/a"));

        cache.Observed(Events(("/a", 6)), 6);
        Assert.Null(Get(cache, "/a"));
        Fill(cache, "/a", revision: 6);
        Assert.NotNull(Get(cache, "/a"));
    }

    [Fact]
    public void Losing_the_watch_clears_everything_and_serves_nothing_until_it_is_up_again()
    {
        var cache = Up(5);
        Fill(cache, "/a", revision: 5);

        cache.Lost();
        Assert.Null(Get(cache, "/a"));
        Assert.Equal(0, cache.Count);
        Assert.Equal(0, cache.Bytes);

        cache.Established(5);
        Assert.Null(Get(cache, "/a"));
    }

    [Fact]
    public void The_least_recently_used_entry_is_evicted_to_stay_within_the_budget()
    {
        using var evictions = new MetricCollector<long>(_meters, ReadCacheMetrics.MeterName, "etcdshield.read_cache.evictions");
        var entry = EntrySize("/a");
        var cache = new RangeCache(entry * 8, _metrics);
        cache.Established(5);
        for (var i = 0; i < 8; i++)
        {
            Fill(cache, $"/{(char)('a' + i)}", revision: 5);
        }

        Assert.NotNull(Get(cache, "/a"));
        Fill(cache, "/z", revision: 5);

        Assert.True(cache.Bytes <= entry * 8);
        Assert.NotNull(Get(cache, "/a"));
        Assert.Null(Get(cache, "/b"));
        Assert.NotNull(Get(cache, "/z"));
        Assert.Equal(1, evictions.Counted());
    }

    [Fact]
    public void An_answer_larger_than_an_eighth_of_the_budget_is_not_cached()
    {
        var cache = new RangeCache(EntrySize("/a") * 7, _metrics);
        cache.Established(5);

        Fill(cache, "/a", revision: 5);

        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void Range_entries_are_bounded_in_number()
    {
        var cache = Up(5);
        for (var i = 0; i <= RangeCache.MaxRangeEntries; i++)
        {
            Fill(cache, $"/r{i:D5}/", revision: 5, rangeEnd: $"/r{i:D5}0");
        }

        Assert.Equal(RangeCache.MaxRangeEntries, cache.Count);
        Assert.Null(Get(cache, "/r00000/", rangeEnd: "/r000000"));
    }

    [Fact]
    public void A_range_write_examines_the_entries_in_its_range_not_every_entry()
    {
        var cache = new RangeCache(64 << 20, _metrics);
        cache.Established(5);
        for (var i = 0; i < 10_000; i++)
        {
            Fill(cache, $"/k/{i:D5}", revision: 5);
        }

        Fill(cache, "/k/", revision: 5, rangeEnd: "/k0");
        var before = cache.Examined;

        // A delete of /k/00100 up to, not including, /k/00110; then every key from /k/09995 on.
        cache.Wrote([new WrittenRange(Bytes("/k/00100"), Bytes("/k/00110"))], 6);
        cache.Wrote([new WrittenRange(Bytes("/k/09995"), Bytes("\0"))], 7);

        // 15 single-key entries, and the one range entry checked by each write (it goes with the first).
        Assert.InRange(cache.Examined - before, 15, 17);
        Assert.Null(Get(cache, "/k/00100"));
        Assert.Null(Get(cache, "/k/00109"));
        Assert.Null(Get(cache, "/k/09995"));
        Assert.Null(Get(cache, "/k/09999"));
        Assert.Null(Get(cache, "/k/", rangeEnd: "/k0"));
        Assert.NotNull(Get(cache, "/k/00099"));
        Assert.NotNull(Get(cache, "/k/00110"));
        Assert.NotNull(Get(cache, "/k/09994"));
        Assert.Equal(10_000 - 15, cache.Count);
    }

    private RangeCache Up(long revision)
    {
        var cache = new RangeCache(1 << 20, _metrics);
        cache.Established(revision);
        return cache;
    }

    private long EntrySize(string key)
    {
        var cache = Up(5);
        Fill(cache, key, revision: 5);
        return cache.Bytes;
    }

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);

    private static RangeRequest Request(string key, string rangeEnd = "") =>
        new() { Key = Bytes(key), RangeEnd = Bytes(rangeEnd), Serializable = true };

    private static ByteString Key(string key, string rangeEnd = "") => Request(key, rangeEnd).ToByteString();

    private static RangeResponse Response(string key, long revision) => new()
    {
        Header = new ResponseHeader { Revision = revision },
        Kvs = { new KeyValue { Key = Bytes(key), Value = Bytes($"v@{revision}"), ModRevision = revision } },
        Count = 1,
    };

    private static void Fill(RangeCache cache, string key, long revision, string rangeEnd = "")
    {
        cache.TryGet(Key(key, rangeEnd), out var generation);
        cache.Store(Key(key, rangeEnd), Request(key, rangeEnd), Response(key, revision), generation);
    }

    private static RangeResponse? Get(RangeCache cache, string key, string rangeEnd = "") => cache.TryGet(Key(key, rangeEnd), out _);

    private static string Value(RangeResponse? response) => Assert.Single(Assert.IsType<RangeResponse>(response).Kvs).Value.ToStringUtf8();

    private static RepeatedField<Event> Events(params (string Key, long Revision)[] changes)
    {
        var events = new RepeatedField<Event>();
        events.AddRange(changes.Select(c => new Event { Type = Event.Types.EventType.Put, Kv = new KeyValue { Key = Bytes(c.Key), ModRevision = c.Revision } }));
        return events;
    }
}
