using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Protocol.V3lockpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Tests.Relay;

/// <summary>
/// The call path of <see cref="EtcdShield.Relay.RequestRelay"/> against an in-memory etcd: authorization before
/// anything reaches etcd, status mapping, shutdown, pass-through as bytes, and refusals on streams while etcd's
/// events are still being written.
/// </summary>
public sealed class RequestRelayTests : IDisposable
{
    private readonly RelayBed _bed = new();

    public void Dispose() => _bed.Dispose();

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Fact]
    public async Task An_allowed_request_reaches_etcd_with_the_clients_headers_and_its_answer_comes_back()
    {
        var context = _bed.Context();
        context.RequestHeaders.Add("hasleader", "true");

        var response = (PutResponse)await _bed.Relay.UnaryAsync(RelayBed.Method("KV/Put"), new PutRequest { Key = B("/app/a"), Value = B("v") }, context);

        Assert.True(response.Header.Revision > 0);
        var sent = Assert.Single(_bed.Etcd.Requests);
        Assert.Equal("v", ((PutRequest)sent.Request!).Value.ToStringUtf8());
        Assert.Equal("true", sent.Headers?.GetValue("hasleader"));
        Assert.Equal("OK", _bed.LastCode("KV/Put"));
    }

    [Fact]
    public async Task A_denied_request_never_reaches_etcd_and_is_counted_as_denied()
    {
        var denied = await Assert.ThrowsAsync<AccessDenial>(
            () => _bed.Relay.UnaryAsync(RelayBed.Method("KV/Put"), new PutRequest { Key = B("/other/a"), Value = B("v") }, _bed.Context()));

        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        Assert.Equal("etcdshield: permission denied: identity \"app\" may not write key \"/other/a\" (KV/Put put)", denied.Status.Detail);
        Assert.Empty(_bed.Etcd.Requests);
        Assert.Equal("PERMISSION_DENIED", _bed.LastCode("KV/Put"));
        Assert.Equal("KV/Put", Assert.Single(_bed.Denied.GetMeasurementSnapshot()).Tags["method"]);
    }

    [Fact]
    public async Task Etcds_error_reaches_the_client_with_its_exact_code_and_text()
    {
        _bed.Etcd.FailNext("KV/Put", StatusCode.InvalidArgument, "etcdserver: key is not provided");

        var failed = await Assert.ThrowsAsync<RpcException>(
            () => _bed.Relay.UnaryAsync(RelayBed.Method("KV/Put"), new PutRequest { Key = B("/app/a") }, _bed.Context()));

        Assert.Equal(StatusCode.InvalidArgument, failed.StatusCode);
        Assert.Equal("etcdserver: key is not provided", failed.Status.Detail);
        Assert.Equal("INVALID_ARGUMENT", _bed.LastCode("KV/Put"));
    }

    [Fact]
    public async Task A_method_decided_by_name_passes_as_bytes_unparsed()
    {
        var answer = new StatusResponse { Version = "3.4.23", DbSize = 20480, Leader = 7 };
        _bed.Etcd.OnEvery("Maintenance/Status", _ => answer);

        var bytes = await _bed.Relay.PassUnaryAsync(RelayBed.Method("Maintenance/Status"), new StatusRequest().ToByteArray(), _bed.Context());

        Assert.Equal(answer.ToByteArray(), bytes);
    }

    [Fact]
    public async Task A_method_decided_by_name_is_refused_to_a_caller_without_it()
    {
        var denied = await Assert.ThrowsAsync<AccessDenial>(
            () => _bed.Relay.PassUnaryAsync(RelayBed.Method("Maintenance/Defragment"), [], _bed.Context()));

        Assert.Equal("etcdshield: permission denied: identity \"app\" may not call Maintenance/Defragment", denied.Status.Detail);
        Assert.Empty(_bed.Etcd.Requests);
    }

    [Fact]
    public async Task A_unary_call_in_flight_when_the_proxy_stops_finishes_with_etcds_answer()
    {
        // The host's shutdown timeout bounds it (Kestrel aborts what is left); ending it at once would lose an answer.
        _bed.Etcd.Store.Put("/app/a", "v");
        var held = _bed.Etcd.HoldNext("KV/Range");
        var call = _bed.Relay.UnaryAsync(RelayBed.Method("KV/Range"), new RangeRequest { Key = B("/app/a") }, _bed.Context());
        await held.Reached;

        _bed.StopProxy();
        held.Open();

        var answer = Assert.IsType<RangeResponse>(await call);
        Assert.Equal(B("v"), Assert.Single(answer.Kvs).Value);
        Assert.Equal("OK", _bed.LastCode("KV/Range"));
    }

    [Fact]
    public async Task A_call_whose_client_goes_away_ends_cancelled()
    {
        using var client = new CancellationTokenSource();
        var held = _bed.Etcd.HoldNext("KV/Range");
        var call = _bed.Relay.UnaryAsync(RelayBed.Method("KV/Range"), new RangeRequest { Key = B("/app/a") }, _bed.Context(client.Token));
        await held.Reached;

        await client.CancelAsync();

        var ended = await Assert.ThrowsAsync<RpcException>(() => call);
        Assert.Equal(StatusCode.Cancelled, ended.StatusCode);
    }

    [Fact]
    public async Task A_lock_waiting_for_its_turn_ends_permission_denied_when_a_reload_takes_its_name_away()
    {
        using var bed = new RelayBed(audit: true);
        // etcd grants the lock only once its holder lets go, which it never does here: only the proxy ends the wait.
        var held = bed.Etcd.HoldNext("Lock/Lock");
        var call = bed.Relay.UnaryAsync(RelayBed.Method("Lock/Lock"), new LockRequest { Name = B("/app/lock") }, bed.Context());
        await held.Reached;

        bed.ChangePolicy("{ prefix: /elsewhere/, permission: readwrite }");

        // The bound only keeps a regression from hanging the run; the call ends as soon as the reload is judged.
        var ended = await Assert.ThrowsAsync<AccessDenial>(() => call.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("etcdshield: permission denied: identity \"app\" may not read and write prefix \"/app/lock/\" (Lock/Lock lock)", ended.Status.Detail);
        Assert.Equal("PERMISSION_DENIED", bed.LastCode("Lock/Lock"));
        var record = Assert.Single(await bed.AuditedAsync());
        Assert.Equal("denied", record.GetProperty("outcome").GetString());
        Assert.Equal(ended.Status.Detail, record.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task A_forbidden_watch_is_refused_on_the_stream_while_etcd_keeps_sending_the_allowed_ones_events()
    {
        var etcd = _bed.Etcd.NextStream("Watch/Watch");
        var client = new ClientStream<IMessage>();
        var relay = _bed.Relay.DuplexStreamingAsync(RelayBed.Method("Watch/Watch"), client, client, _bed.Context());
        await etcd.Opened;

        client.Send(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/app/"), RangeEnd = B("/app0"), WatchId = 1 } });
        var create = (WatchRequest)await etcd.Requests.ReadAsync();
        Assert.Equal(1, create.CreateRequest.WatchId);
        etcd.Respond(new WatchResponse { WatchId = 1, Created = true });
        etcd.Respond(PutEvent(1, "/app/x", 10));

        client.Send(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/secret/"), RangeEnd = B("/secret0"), WatchId = 2 } });
        etcd.Respond(PutEvent(1, "/app/y", 11));

        var told = new List<WatchResponse>();
        while (told.Count < 4)
        {
            told.Add((WatchResponse)await client.Received.ReadAsync());
        }

        var refusal = Assert.Single(told, r => r.WatchId == 2);
        Assert.True(refusal is { Created: true, Canceled: true });
        Assert.StartsWith("rpc error: code = PermissionDenied desc = etcdshield: permission denied: identity \"app\" may not read prefix \"/secret/\"", refusal.CancelReason, StringComparison.Ordinal);
        Assert.Equal(["/app/x", "/app/y"], told.Where(r => r.WatchId == 1).SelectMany(r => r.Events).Select(e => e.Kv.Key.ToStringUtf8()));
        Assert.False(etcd.Requests.TryRead(out _), "the forbidden watch reached etcd");

        client.CloseSending();
        etcd.Complete();
        await relay;
        Assert.Equal("OK", _bed.LastCode("Watch/Watch"));
    }

    [Fact]
    public async Task A_watch_no_longer_readable_after_a_reload_is_cancelled_in_etcd_and_its_later_events_are_not_written()
    {
        var etcd = _bed.Etcd.NextStream("Watch/Watch");
        var client = new ClientStream<IMessage>();
        var relay = _bed.Relay.DuplexStreamingAsync(RelayBed.Method("Watch/Watch"), client, client, _bed.Context());
        client.Send(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/app/"), RangeEnd = B("/app0"), WatchId = 1 } });
        await etcd.Requests.ReadAsync();
        etcd.Respond(new WatchResponse { WatchId = 1, Created = true });
        Assert.True(((WatchResponse)await client.Received.ReadAsync()).Created);

        _bed.ChangePolicy("{ prefix: /elsewhere/, permission: read }");
        etcd.Respond(PutEvent(1, "/app/after", 12));

        var cancelled = (WatchResponse)await client.Received.ReadAsync();
        Assert.True(cancelled is { WatchId: 1, Canceled: true, Events.Count: 0 });
        var cancel = (WatchRequest)await etcd.Requests.ReadAsync();
        Assert.Equal(1, cancel.CancelRequest.WatchId);

        client.CloseSending();
        etcd.Complete();
        await relay;
        Assert.False(client.Received.TryRead(out var more), $"written after the cancellation: {more}");
    }

    [Fact]
    public async Task Every_decision_on_a_watch_stream_is_audited_once_the_stream_each_create_and_each_watch_cut_short()
    {
        using var bed = new RelayBed(audit: true);
        var etcd = bed.Etcd.NextStream("Watch/Watch");
        var client = new ClientStream<IMessage>();
        var relay = bed.Relay.DuplexStreamingAsync(RelayBed.Method("Watch/Watch"), client, client, bed.Context());
        client.Send(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/app/"), RangeEnd = B("/app0"), WatchId = 1 } });
        await etcd.Requests.ReadAsync();
        etcd.Respond(new WatchResponse { WatchId = 1, Created = true });
        Assert.True(((WatchResponse)await client.Received.ReadAsync()).Created);
        client.Send(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/secret/x"), WatchId = 2 } });
        Assert.True(((WatchResponse)await client.Received.ReadAsync()) is { WatchId: 2, Canceled: true });

        bed.ChangePolicy("{ prefix: /elsewhere/, permission: read }");
        Assert.True(((WatchResponse)await client.Received.ReadAsync()) is { WatchId: 1, Canceled: true });
        client.CloseSending();
        etcd.Complete();
        await relay;

        var records = await bed.AuditedAsync();
        Assert.Equal(
            [
                "allowed OK /app/ watch",
                "denied PERMISSION_DENIED /secret/x watch",
                "denied PERMISSION_DENIED /app/ watch",
                "allowed OK",
            ],
            records.Select(r => string.Join(' ', new[] { r.GetProperty("outcome").GetString(), r.GetProperty("code").GetString() }
                .Concat(r.TryGetProperty("keys", out var keys) ? keys.EnumerateArray().SelectMany(k => new[] { k.GetProperty("key").GetString(), k.GetProperty("op").GetString() }) : []))));
        Assert.All(records, r => Assert.Equal("Watch/Watch", r.GetProperty("method").GetString()));
    }

    [Fact]
    public async Task A_keep_alive_of_a_lease_the_caller_does_not_own_is_answered_as_an_unknown_lease_and_never_forwarded()
    {
        var etcd = _bed.Etcd.NextStream("Lease/LeaseKeepAlive");
        var client = new ClientStream<IMessage>();
        var relay = _bed.Relay.DuplexStreamingAsync(RelayBed.Method("Lease/LeaseKeepAlive"), client, client, _bed.Context());
        await etcd.Opened;

        client.Send(new LeaseKeepAliveRequest { ID = 0x0123_4567_89ab });

        var answer = (LeaseKeepAliveResponse)await client.Received.ReadAsync();
        Assert.Equal(0x0123_4567_89ab, answer.ID);
        Assert.Equal(0, answer.TTL);
        client.CloseSending();
        etcd.Complete();
        await relay;
        Assert.True(etcd.RequestsCompleted);
        Assert.False(etcd.Requests.TryRead(out _), "the foreign keep-alive reached etcd");
    }

    [Fact]
    public async Task A_snapshot_passes_as_bytes_and_ends_permission_denied_when_the_reload_takes_the_method_away()
    {
        var etcd = _bed.Etcd.NextStream("Maintenance/Snapshot");
        var client = new ClientStream<byte[]>();
        var relay = _bed.Relay.ServerStreamingAsync(RelayBed.Method("Maintenance/Snapshot"), new SnapshotRequest().ToByteArray(), client, _bed.Context());
        var chunk = new SnapshotResponse { RemainingBytes = 1, Blob = B("first") };
        etcd.Respond(chunk);
        Assert.Equal(chunk.ToByteArray(), await client.Received.ReadAsync());

        _bed.ChangePolicy("{ prefix: /app/, permission: readwrite }", methods: "[Maintenance/Status]");
        etcd.Respond(new SnapshotResponse { RemainingBytes = 0, Blob = B("second") });

        var ended = await Assert.ThrowsAsync<AccessDenial>(() => relay);
        Assert.Equal("etcdshield: permission denied: identity \"app\" may not call Maintenance/Snapshot", ended.Status.Detail);
        Assert.False(client.Received.TryRead(out _), "a chunk passed after the method was taken away");
        Assert.Equal("PERMISSION_DENIED", _bed.LastCode("Maintenance/Snapshot"));
    }

    [Fact]
    public async Task A_stream_over_the_callers_limit_is_refused_before_etcd_is_asked()
    {
        using var bed = new RelayBed(maxStreams: 1);
        var first = bed.Etcd.NextStream("Watch/Watch");
        var client = new ClientStream<IMessage>();
        var open = bed.Relay.DuplexStreamingAsync(RelayBed.Method("Watch/Watch"), client, client, bed.Context());
        await first.Opened;

        var second = new ClientStream<IMessage>();
        var refused = await Assert.ThrowsAsync<RpcException>(() => bed.Relay.DuplexStreamingAsync(RelayBed.Method("Watch/Watch"), second, second, bed.Context()));

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Single(bed.Etcd.Requests);
        client.CloseSending();
        first.Complete();
        await open;
    }

    [Fact]
    public async Task A_stream_gives_its_slot_back_however_it_ends()
    {
        using var bed = new RelayBed(maxStreams: 1);

        // Ended by the judge on the reload signal alone, with no chunk from etcd to judge.
        var snapshot = bed.Etcd.NextStream("Maintenance/Snapshot");
        var chunks = new ClientStream<byte[]>();
        var refused = bed.Relay.ServerStreamingAsync(RelayBed.Method("Maintenance/Snapshot"), new SnapshotRequest().ToByteArray(), chunks, bed.Context());
        await snapshot.Opened;
        bed.ChangePolicy("{ prefix: /app/, permission: readwrite }", methods: "[Maintenance/Status, Lease/LeaseKeepAlive]");
        Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<AccessDenial>(() => refused)).StatusCode);

        // Left by its client.
        using var gone = new CancellationTokenSource();
        var watch = bed.Etcd.NextStream("Watch/Watch");
        var watcher = new ClientStream<IMessage>();
        var left = bed.Relay.DuplexStreamingAsync(RelayBed.Method("Watch/Watch"), watcher, watcher, bed.Context(gone.Token));
        await watch.Opened;
        await gone.CancelAsync();
        Assert.Equal(StatusCode.Cancelled, (await Assert.ThrowsAsync<RpcException>(() => left)).StatusCode);

        // Failed by etcd.
        var keepAlive = bed.Etcd.NextStream("Lease/LeaseKeepAlive");
        var renewer = new ClientStream<IMessage>();
        var failed = bed.Relay.DuplexStreamingAsync(RelayBed.Method("Lease/LeaseKeepAlive"), renewer, renewer, bed.Context());
        await keepAlive.Opened;
        keepAlive.Fail(StatusCode.ResourceExhausted, "etcdserver: too many requests");
        Assert.Equal("etcdserver: too many requests", (await Assert.ThrowsAsync<RpcException>(() => failed)).Status.Detail);

        // A Lock waiting for its turn, ended by a reload.
        var held = bed.Etcd.HoldNext("Lock/Lock");
        var waiting = bed.Relay.UnaryAsync(RelayBed.Method("Lock/Lock"), new LockRequest { Name = B("/app/lock") }, bed.Context());
        await held.Reached;
        bed.ChangePolicy("{ prefix: /elsewhere/, permission: readwrite }", methods: "[Lease/LeaseKeepAlive]");
        await Assert.ThrowsAsync<AccessDenial>(() => waiting.WaitAsync(TimeSpan.FromSeconds(30)));

        // Each gave its slot back: the one stream the caller may hold opens.
        var last = bed.Etcd.NextStream("Lease/LeaseKeepAlive");
        var client = new ClientStream<IMessage>();
        var open = bed.Relay.DuplexStreamingAsync(RelayBed.Method("Lease/LeaseKeepAlive"), client, client, bed.Context());
        await last.Opened;
        client.CloseSending();
        last.Complete();
        await open;
        Assert.Equal("OK", bed.LastCode("Lease/LeaseKeepAlive"));
    }

    [Fact]
    public async Task Streams_open_while_the_proxy_stops_end_unavailable()
    {
        var etcd = _bed.Etcd.NextStream("Watch/Watch");
        var client = new ClientStream<IMessage>();
        var relay = _bed.Relay.DuplexStreamingAsync(RelayBed.Method("Watch/Watch"), client, client, _bed.Context());
        await etcd.Opened;

        _bed.StopProxy();

        var ended = await Assert.ThrowsAsync<RpcException>(() => relay);
        Assert.Equal(StatusCode.Unavailable, ended.StatusCode);
        Assert.Equal("etcdshield: shutting down", ended.Status.Detail);
        await etcd.Disposed;
    }

    [Fact]
    public async Task A_client_that_resets_its_stream_while_an_event_is_written_ends_cancelled_without_an_error_log()
    {
        // Kestrel fails the write of a reset stream before it cancels the call's token: the client left, nothing in
        // the proxy went wrong, and a watcher resetting its streams must not be able to fill the error log.
        var etcd = _bed.Etcd.NextStream("Watch/Watch");
        var requests = new ClientStream<IMessage>();
        var relay = _bed.Relay.DuplexStreamingAsync(RelayBed.Method("Watch/Watch"), requests, new ResetClient(), _bed.Context());
        requests.Send(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/app/"), RangeEnd = B("/app0"), WatchId = 1 } });
        await etcd.Requests.ReadAsync();

        etcd.Respond(new WatchResponse { WatchId = 1, Created = true });

        var ended = await Assert.ThrowsAsync<RpcException>(() => relay);
        Assert.Equal(StatusCode.Cancelled, ended.StatusCode);
        Assert.DoesNotContain(_bed.Logs.GetSnapshot(), log => log.Level >= Microsoft.Extensions.Logging.LogLevel.Error);
    }

    private static WatchResponse PutEvent(long watchId, string key, long revision) => new()
    {
        WatchId = watchId,
        Events = { new Event { Type = Event.Types.EventType.Put, Kv = new KeyValue { Key = B(key), Value = B("v"), ModRevision = revision } } },
    };

    private sealed class ResetClient : IServerStreamWriter<IMessage>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(IMessage message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(IMessage message, CancellationToken cancellationToken) => Task.FromException(new IOException("The client reset the request stream."));
    }
}
