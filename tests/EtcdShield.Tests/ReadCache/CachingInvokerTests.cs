using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.ReadCache;
using EtcdShield.Tests.Relay;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.ReadCache;

/// <summary>
/// The cache as the relay reaches etcd through it, in front of the in-memory etcd; the test plays etcd's side of
/// the cache's watch (a <see cref="ScriptedStream"/>) and the clock.
/// </summary>
public sealed class CachingInvokerTests : IDisposable
{
    private static readonly TimeSpan IdleAfter = TimeSpan.FromMinutes(1);

    // How long a test waits for what the cache's watch does on the thread pool before it fails.
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly InMemoryEtcd _etcd = new();
    private readonly FakeTimeProvider _time = new();
    private readonly SerializableReadCache _cache;
    private readonly KV.KVClient _kv;
    private readonly ScriptedStream _watch;

    public CachingInvokerTests()
    {
        _watch = _etcd.NextStream("Watch/Watch");
        _cache = new SerializableReadCache(_etcd, 1 << 20, new ReadCacheMetrics(TestMeterFactory.Create()), _time, IdleAfter, NullLogger.Instance);
        _kv = new KV.KVClient(_cache.Wrap(_etcd));
    }

    public void Dispose() => _cache.Dispose();

    [Fact]
    public async Task The_first_read_opens_one_watch_of_the_whole_keyspace_asking_for_a_leader()
    {
        _etcd.Store.Put("/a", "1");

        await ReadAsync("/a");

        var options = await _watch.Opened;
        Assert.Equal("true", options.Headers?.GetValue("hasleader"));
        var create = Assert.IsType<WatchRequest>(await _watch.Requests.ReadAsync()).CreateRequest;
        Assert.Equal(ByteString.CopyFrom(0), create.Key);
        Assert.Equal(ByteString.CopyFrom(0), create.RangeEnd);
        Assert.False(create.PrevKv);
        // Split by etcd below --max-request-bytes: a catch-up batch of 1,000 revisions is otherwise one message.
        Assert.True(create.Fragment);
    }

    [Fact]
    public async Task Writes_and_reads_the_cache_does_not_answer_never_open_the_watch()
    {
        var key = ByteString.CopyFromUtf8("/a");
        for (var i = 0; i < 3; i++)
        {
            await _kv.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8($"{i}") });
            await _kv.RangeAsync(new RangeRequest { Key = key });
            await _kv.DeleteRangeAsync(new DeleteRangeRequest { Key = key });
        }

        Assert.True(_cache.Watch!.Running.IsCompleted);
        Assert.False(_watch.Opened.IsCompleted);
    }

    [Fact]
    public async Task A_read_repeated_once_the_watch_is_up_is_answered_without_etcd()
    {
        _etcd.Store.Put("/a", "1");
        await EstablishAsync();

        Assert.Equal("1", await ReadAsync("/a"));
        var sent = _etcd.SentTo<RangeRequest>("KV/Range").Count;
        Assert.Equal("1", await ReadAsync("/a"));
        Assert.Equal("1", await ReadAsync("/a"));

        Assert.Equal(sent, _etcd.SentTo<RangeRequest>("KV/Range").Count);
    }

    [Fact]
    public async Task A_change_by_another_writer_reaches_the_next_read_once_the_watch_delivers_it()
    {
        _etcd.Store.Put("/a", "1");
        await EstablishAsync();
        Assert.Equal("1", await ReadAsync("/a"));
        Assert.Equal("1", await ReadAsync("/a"));

        var revision = _etcd.Store.Put("/a", "2");
        Assert.Equal("1", await ReadAsync("/a"));
        _watch.Respond(new WatchResponse
        {
            Header = new ResponseHeader { Revision = revision },
            Events = { new Event { Type = Event.Types.EventType.Put, Kv = new KeyValue { Key = ByteString.CopyFromUtf8("/a"), ModRevision = revision } } },
        });
        await _cache.Entries!.Reached(revision);

        Assert.Equal("2", await ReadAsync("/a"));
    }

    [Fact]
    public async Task A_serializable_read_is_never_older_than_a_revision_an_answer_through_the_proxy_already_showed()
    {
        _etcd.Store.Put("/a", "1");
        await EstablishAsync();
        Assert.Equal("1", await ReadAsync("/a"));
        Assert.Equal("1", await ReadAsync("/a"));

        // Another writer, straight to etcd; the cache's watch has not delivered it yet. A linearizable read through
        // the proxy shows the new value: a later serializable read through the same proxy must not go back to the old
        // one (etcd's member would not: its serializable reads never go below what it has answered).
        _etcd.Store.Put("/a", "2");
        var linearizable = await _kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/a") });
        Assert.Equal("2", linearizable.Kvs.Single().Value.ToStringUtf8());

        Assert.Equal("2", await ReadAsync("/a"));
    }

    [Fact]
    public async Task A_write_through_the_proxy_is_read_at_once_before_the_watch_delivers_it()
    {
        _etcd.Store.Put("/a", "1");
        _etcd.Store.Put("/b", "1");
        await EstablishAsync();
        Assert.Equal("1", await ReadAsync("/a"));
        Assert.Equal("1", await ReadAsync("/b"));
        Assert.Equal("2", await ReadAsync("/", prefix: true, rangeEnd: "/b0"));

        await _kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("/a"), Value = ByteString.CopyFromUtf8("2") });
        await _kv.TxnAsync(new TxnRequest
        {
            // No compares: etcd takes the success branch, here a txn nested in a txn.
            Success =
            {
                new RequestOp
                {
                    RequestTxn = new TxnRequest { Success = { new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = ByteString.CopyFromUtf8("/b") } } } },
                },
            },
        });

        Assert.Equal("2", await ReadAsync("/a"));
        Assert.Null(await ReadAsync("/b"));
        Assert.Equal("1", await ReadAsync("/", prefix: true, rangeEnd: "/b0"));
    }

    [Fact]
    public async Task Reads_that_are_not_serializable_at_the_head_or_carry_per_call_metadata_always_reach_etcd()
    {
        _etcd.Store.Put("/a", "1");
        await EstablishAsync();
        var key = ByteString.CopyFromUtf8("/a");
        var sent = _etcd.SentTo<RangeRequest>("KV/Range").Count;

        for (var i = 0; i < 2; i++)
        {
            await _kv.RangeAsync(new RangeRequest { Key = key });
            await _kv.RangeAsync(new RangeRequest { Key = key, Serializable = true, Revision = 2 });
            await _kv.RangeAsync(new RangeRequest { Key = key, Serializable = true }, new Metadata { { "token", "etcd-user-token" } });
            await _kv.RangeAsync(new RangeRequest { Key = key, Serializable = true }, new Metadata { { "hasleader", "true" } });
        }

        Assert.Equal(sent + 8, _etcd.SentTo<RangeRequest>("KV/Range").Count);
    }

    [Fact]
    public async Task When_the_watch_fails_the_cache_is_cleared_and_reads_reach_etcd()
    {
        _etcd.Store.Put("/a", "1");
        await EstablishAsync();
        Assert.Equal("1", await ReadAsync("/a"));
        Assert.Equal(1, _cache.Entries!.Count);

        _watch.Fail(StatusCode.Unavailable, "etcd went away");
        await _cache.Watch!.Running;

        Assert.Equal(0, _cache.Entries.Count);
        var sent = _etcd.SentTo<RangeRequest>("KV/Range").Count;
        Assert.Equal("1", await ReadAsync("/a"));
        Assert.Equal(sent + 1, _etcd.SentTo<RangeRequest>("KV/Range").Count);
    }

    [Fact]
    public async Task The_watch_closes_after_a_quiet_period_without_reads_and_the_cache_with_it()
    {
        _etcd.Store.Put("/a", "1");
        await EstablishAsync();
        Assert.Equal("1", await ReadAsync("/a"));

        _time.Advance(IdleAfter);
        await _watch.Disposed;
        await _cache.Watch!.Running;

        Assert.Equal(0, _cache.Entries!.Count);
    }

    [Fact]
    public async Task A_watch_delivering_far_more_changes_than_the_cache_answers_reads_closes_and_reads_reach_etcd_until_a_hold_off_ends()
    {
        _etcd.Store.Put("/a", "1");
        await EstablishAsync();
        Assert.Equal("1", await ReadAsync("/a"));
        Assert.Equal("1", await ReadAsync("/a"));

        // Another writer's changes elsewhere in the keyspace, one check's worth; the cache answered one read.
        DeliverChanges(KeyspaceWatch.ChangesPerCheck);
        await _watch.Disposed.WaitAsync(Patience);
        await _cache.Watch!.Running.WaitAsync(Patience);

        Assert.Equal(0, _cache.Entries!.Count);
        var sent = _etcd.SentTo<RangeRequest>("KV/Range").Count;
        _etcd.Store.Put("/a", "2");
        Assert.Equal("2", await ReadAsync("/a"));
        Assert.Equal("2", await ReadAsync("/a"));
        Assert.Equal(sent + 2, _etcd.SentTo<RangeRequest>("KV/Range").Count);

        // A watch opened now would wait on this stream: the task of the watch would not be complete.
        var next = _etcd.NextStream("Watch/Watch");
        _time.Advance(KeyspaceWatch.FirstHoldOff - TimeSpan.FromSeconds(1));
        Assert.Equal("2", await ReadAsync("/a"));
        Assert.True(_cache.Watch.Running.IsCompleted);
        Assert.False(next.Opened.IsCompleted);

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal("2", await ReadAsync("/a"));
        Assert.IsType<WatchRequest>(await next.Requests.ReadAsync().AsTask().WaitAsync(Patience));
    }

    [Fact]
    public async Task A_watch_the_cache_keeps_paying_for_stays_open_past_every_check()
    {
        _etcd.Store.Put("/a", "1");
        await EstablishAsync();
        Assert.Equal("1", await ReadAsync("/a"));

        for (var check = 0; check < 3; check++)
        {
            for (var i = 0; i < KeyspaceWatch.ChangesPerCheck / KeyspaceWatch.ChangesPerAnswer; i++)
            {
                Assert.Equal("1", await ReadAsync("/a"));
            }

            DeliverChanges(KeyspaceWatch.ChangesPerCheck);
            // A progress notification after the changes: once it is delivered, the check after them has been made.
            var revision = _etcd.Store.Put("/elsewhere", "x");
            _watch.Respond(new WatchResponse { Header = new ResponseHeader { Revision = revision } });
            await _cache.Entries!.Reached(revision).WaitAsync(Patience);
        }

        Assert.False(_watch.Disposed.IsCompleted);
        Assert.False(_cache.Watch!.Running.IsCompleted);
        var sent = _etcd.SentTo<RangeRequest>("KV/Range").Count;
        Assert.Equal("1", await ReadAsync("/a"));
        Assert.Equal(sent, _etcd.SentTo<RangeRequest>("KV/Range").Count);
    }

    [Fact]
    public async Task A_cache_that_keeps_not_paying_waits_twice_as_long_each_time_before_its_watch_opens_again()
    {
        await EstablishAsync();
        DeliverChanges(KeyspaceWatch.ChangesPerCheck);
        await _cache.Watch!.Running.WaitAsync(Patience);

        var second = _etcd.NextStream("Watch/Watch");
        _time.Advance(KeyspaceWatch.FirstHoldOff);
        await EstablishAsync(second);
        DeliverChanges(KeyspaceWatch.ChangesPerCheck, second);
        await _cache.Watch.Running.WaitAsync(Patience);

        var third = _etcd.NextStream("Watch/Watch");
        _time.Advance(KeyspaceWatch.FirstHoldOff);
        await ReadAsync("/a");
        Assert.True(_cache.Watch.Running.IsCompleted);
        Assert.False(third.Opened.IsCompleted);

        _time.Advance(KeyspaceWatch.FirstHoldOff);
        await EstablishAsync(third);
    }

    [Fact]
    public void Requests_differing_in_any_field_are_different_entries()
    {
        var baseline = new RangeRequest { Key = ByteString.CopyFromUtf8("/a"), Serializable = true };
        var keys = new HashSet<ByteString> { SerializableReadCache.KeyOf(baseline, null)! };
        foreach (var field in RangeRequest.Descriptor.Fields.InFieldNumberOrder())
        {
            if (field.Name is "serializable" or "revision")
            {
                continue;
            }

            var variant = baseline.Clone();
            var accessor = field.Accessor;
            object value = field.FieldType switch
            {
                Google.Protobuf.Reflection.FieldType.Bytes => ByteString.CopyFromUtf8("/z"),
                Google.Protobuf.Reflection.FieldType.Bool => true,
                Google.Protobuf.Reflection.FieldType.Int64 => 3L,
                Google.Protobuf.Reflection.FieldType.Enum => 1,
                _ => throw new InvalidOperationException($"RangeRequest.{field.Name} has a type this test does not vary"),
            };
            accessor.SetValue(variant, value);
            Assert.True(keys.Add(SerializableReadCache.KeyOf(variant, null)!), $"RangeRequest.{field.Name} is not part of the key");
        }

        Assert.Null(SerializableReadCache.KeyOf(new RangeRequest { Key = baseline.Key }, null));
        Assert.Null(SerializableReadCache.KeyOf(new RangeRequest { Key = baseline.Key, Serializable = true, Revision = 1 }, null));
    }

    /// <summary>A first read opens the watch; etcd says it is created at the store's revision.</summary>
    private async Task EstablishAsync(ScriptedStream? watch = null)
    {
        watch ??= _watch;
        await _kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/warm-up"), Serializable = true });
        await watch.Requests.ReadAsync();
        var revision = _etcd.Store.Revision;
        watch.Respond(new WatchResponse { Created = true, Header = new ResponseHeader { Revision = revision } });
        await _cache.Entries!.Reached(revision);
    }

    /// <summary>Another writer's <paramref name="count"/> puts, of keys nothing reads, delivered by the watch in responses of 64 events.</summary>
    private void DeliverChanges(int count, ScriptedStream? watch = null)
    {
        for (var sent = 0; sent < count;)
        {
            var response = new WatchResponse();
            for (var i = 0; i < 64 && sent < count; i++, sent++)
            {
                var revision = _etcd.Store.Put($"/other/{sent}", "x");
                response.Events.Add(new Event { Type = Event.Types.EventType.Put, Kv = new KeyValue { Key = ByteString.CopyFromUtf8($"/other/{sent}"), ModRevision = revision } });
            }

            response.Header = new ResponseHeader { Revision = _etcd.Store.Revision };
            (watch ?? _watch).Respond(response);
        }
    }

    private async Task<string?> ReadAsync(string key, bool prefix = false, string? rangeEnd = null)
    {
        var request = new RangeRequest { Key = ByteString.CopyFromUtf8(key), Serializable = true };
        if (prefix)
        {
            request.RangeEnd = ByteString.CopyFromUtf8(rangeEnd ?? key + "0");
        }

        var response = await _kv.RangeAsync(request);
        return prefix ? response.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) : response.Kvs.SingleOrDefault()?.Value.ToStringUtf8();
    }
}
