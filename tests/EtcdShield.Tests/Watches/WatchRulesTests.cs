using EtcdShield.Configuration;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Relay;
using EtcdShield.Tests.Relay;
using EtcdShield.Watches;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Tests.Watches;

/// <summary>Progress answers, policy changes, failures of etcd and of opening values, fragments and the frames' bytes.</summary>
public sealed class WatchRulesTests
{
    [Fact]
    public async Task A_progress_request_is_answered_with_watch_id_minus_one_after_every_event_up_to_its_revision()
    {
        using var bed = new RelayBed(watches: new ShieldOptions());
        var etcd = new WatchEtcd(bed.Etcd);
        var client = new WatchClient(bed);
        await client.WatchAsync("/app/", "/app0");
        var put = etcd.Put("/app/a", "1");

        client.RequestProgress();
        var first = await client.NextAsync();
        var answer = await client.NextAsync();

        Assert.Equal(put, first.Events.Single().Kv.ModRevision);
        Assert.True(answer is { WatchId: -1, Created: false, Canceled: false, Events.Count: 0 });
        Assert.Equal(put, answer.Header.Revision);
    }

    [Fact]
    public async Task A_progress_request_on_a_stream_without_watches_is_answered_with_the_current_revision()
    {
        using var bed = new RelayBed(watches: new ShieldOptions());
        var etcd = new WatchEtcd(bed.Etcd);
        etcd.Put("/app/a", "1");
        var client = new WatchClient(bed);

        client.RequestProgress();
        var answer = await client.NextAsync();

        Assert.True(answer is { WatchId: -1 });
        Assert.Equal(etcd.Revision, answer.Header.Revision);
    }

    [Fact]
    public async Task A_progress_notify_watch_without_events_is_told_its_revision_each_interval_and_one_with_events_is_not()
    {
        using var bed = new RelayBed(watches: new ShieldOptions { WatchProgressNotifyInterval = TimeSpan.FromMinutes(1) });
        var etcd = new WatchEtcd(bed.Etcd);
        var quiet = new WatchClient(bed);
        var created = await quiet.WatchAsync("/app/quiet", watchId: 3, progressNotify: true);
        var busy = new WatchClient(bed);
        await busy.WatchAsync("/app/busy", watchId: 4, progressNotify: true);
        var put = etcd.Put("/app/busy", "1");
        await busy.NextAsync();

        bed.Time.Advance(TimeSpan.FromMinutes(1));
        var told = await quiet.NextAsync();
        bed.Time.Advance(TimeSpan.FromMinutes(1));
        var busyTold = await busy.NextAsync();

        Assert.True(told is { WatchId: 3, Created: false, Canceled: false, Events.Count: 0 });
        // The revision below which the watch has had everything its feed received; never one it may not have had.
        Assert.Equal(created.Header.Revision, told.Header.Revision);
        Assert.True(busyTold is { WatchId: 4, Events.Count: 0 });
        Assert.Equal(put, busyTold.Header.Revision);
    }

    [Fact]
    public async Task A_policy_that_no_longer_allows_a_range_cancels_its_watch_with_the_reason_and_the_others_go_on()
    {
        using var bed = new RelayBed(keys: "{ prefix: /app/, permission: read }, { prefix: /other/, permission: read }", watches: new ShieldOptions());
        var etcd = new WatchEtcd(bed.Etcd);
        var client = new WatchClient(bed);
        await client.WatchAsync("/app/", "/app0", watchId: 1);
        await client.WatchAsync("/other/", "/other0", watchId: 2);

        bed.ChangePolicy("{ prefix: /other/, permission: read }");
        etcd.Put("/app/x", "1");
        etcd.Put("/other/x", "1");
        WatchResponse[] told = [await client.NextAsync(), await client.NextAsync()];
        var cancelled = told.Single(r => r.WatchId == 1);
        var other = told.Single(r => r.WatchId == 2);

        Assert.True(cancelled is { WatchId: 1, Canceled: true, Created: false });
        Assert.StartsWith("rpc error: code = PermissionDenied", cancelled.CancelReason);
        Assert.True(other is { WatchId: 2 });
        await etcd.ReceivedAsync(r => r.CancelRequest is not null);
    }

    [Fact]
    public async Task A_watch_on_a_range_the_caller_may_not_read_is_refused_as_today()
    {
        using var bed = new RelayBed(watches: new ShieldOptions());
        _ = new WatchEtcd(bed.Etcd);
        var client = new WatchClient(bed);

        var refused = await client.WatchAsync("/secret/", "/secret0", watchId: 4);

        Assert.True(refused is { WatchId: 4, Created: true, Canceled: true });
        Assert.StartsWith("rpc error: code = PermissionDenied", refused.CancelReason);
    }

    [Fact]
    public async Task When_the_shared_upstream_stream_fails_the_client_streams_on_it_end_with_its_status()
    {
        using var bed = new RelayBed(watches: new ShieldOptions());
        var etcd = new WatchEtcd(bed.Etcd);
        var client = new WatchClient(bed);
        await client.WatchAsync("/app/", "/app0");

        etcd.Stream(0).Fail(StatusCode.Unavailable, "etcdserver: no leader");
        var failure = await Assert.ThrowsAsync<RpcException>(() => client.Relay.WaitAsync(TimeSpan.FromSeconds(20)));

        Assert.Equal(StatusCode.Unavailable, failure.StatusCode);
    }

    [Fact]
    public async Task When_a_write_finds_the_shared_stream_ended_before_its_reader_does_the_clients_still_get_etcds_status()
    {
        using var bed = new RelayBed(watches: new ShieldOptions());
        var etcd = new WatchEtcd(bed.Etcd);
        var client = new WatchClient(bed);
        await client.WatchAsync("/app/", "/app0");

        // The next create is written to the finished stream; the write failing must not turn etcd's answer into the
        // proxy's own cancellation.
        etcd.Stream(0).FailUnread(StatusCode.Unavailable, "etcdserver: no leader");
        client.Create("/app/other");
        var failure = await Assert.ThrowsAsync<RpcException>(() => client.Relay.WaitAsync(TimeSpan.FromSeconds(20)));

        Assert.Equal(StatusCode.Unavailable, failure.StatusCode);
        Assert.Equal("etcdserver: no leader", failure.Status.Detail);
    }

    [Fact]
    public async Task When_a_write_is_refused_before_etcds_trailers_reach_the_reader_the_clients_get_etcds_status_not_a_cancellation()
    {
        using var bed = new RelayBed(watches: new ShieldOptions());
        var etcd = new WatchEtcd(bed.Etcd);
        var client = new WatchClient(bed);
        await client.WatchAsync("/app/", "/app0");

        // etcd ends the call: HTTP/2 refuses the pending write first and the status reaches the reader after. Ending the
        // call on the refused write would turn etcd's answer into the proxy's own cancellation.
        etcd.Stream(0).RefuseWrites();
        client.Create("/app/other");
        await etcd.Stream(0).WriteRefused.WaitAsync(TimeSpan.FromSeconds(20));
        etcd.Stream(0).Fail(StatusCode.Unavailable, "etcdserver: no leader");
        var failure = await Assert.ThrowsAsync<RpcException>(() => client.Relay.WaitAsync(TimeSpan.FromSeconds(20)));

        Assert.Equal(StatusCode.Unavailable, failure.StatusCode);
        Assert.Equal("etcdserver: no leader", failure.Status.Detail);
    }

    [Fact]
    public async Task A_value_that_cannot_be_opened_ends_the_subscribed_streams_with_data_loss()
    {
        using var bed = new RelayBed(watches: new ShieldOptions(), watchRewriter: new Unopenable());
        var etcd = new WatchEtcd(bed.Etcd);
        var client = new WatchClient(bed);
        await client.WatchAsync("/app/", "/app0");

        etcd.Put("/app/a", "sealed");
        var failure = await Assert.ThrowsAsync<RpcException>(() => client.Relay.WaitAsync(TimeSpan.FromSeconds(20)));

        Assert.Equal(StatusCode.DataLoss, failure.StatusCode);
    }

    [Fact]
    public async Task A_watch_that_asked_for_fragments_gets_a_large_response_split_as_etcd_splits_it_and_one_that_did_not_gets_it_whole()
    {
        using var bed = new RelayBed(watches: new ShieldOptions { MaxRequestBytes = 1024 });
        var etcd = new WatchEtcd(bed.Etcd);
        // etcd splits at --max-request-bytes and 512 KiB of gRPC overhead: 525,312 bytes here.
        var big = new string('v', 200_000);
        etcd.Put("/app/a", big);
        etcd.Put("/app/b", big);
        etcd.Put("/app/c", big);
        var head = new WatchClient(bed);
        await head.WatchAsync("/app/", "/app0");
        var fragmented = new WatchClient(bed);
        await fragmented.WatchAsync("/app/", "/app0", start: 2, fragment: true);
        var whole = new WatchClient(bed);
        await whole.WatchAsync("/app/", "/app0", start: 2);

        var parts = new List<WatchResponse> { await fragmented.NextAsync() };
        while (parts[^1].Fragment)
        {
            parts.Add(await fragmented.NextAsync());
        }

        var single = await whole.NextAsync();

        Assert.Equal(3, single.Events.Count);
        Assert.False(single.Fragment);
        Assert.True(parts.Count > 1);
        Assert.Equal(single.Events, parts.SelectMany(p => p.Events));
        Assert.All(parts, p => Assert.Equal(single.Header, p.Header));
        Assert.All(parts, p => Assert.True(p.CalculateSize() < 1024 + (512 * 1024) || p.Events.Count == 1));
    }

    [Fact]
    public void The_fragment_split_follows_etcds_send_fragments()
    {
        Assert.Null(WatchFrames.FragmentEnds([100, 100], baseSize: 10, maxBytes: 300));
        Assert.Null(WatchFrames.FragmentEnds([1000], baseSize: 10, maxBytes: 300));
        Assert.Equal([2, 4, 5], WatchFrames.FragmentEnds([100, 100, 100, 100, 400], baseSize: 10, maxBytes: 300));
        Assert.Equal([1, 2], WatchFrames.FragmentEnds([144, 144], baseSize: 10, maxBytes: 298));

        // A fragment is measured with its flag set: 10 + 2 + 300 is not under 311, so three events do not fit though 10 + 300 would.
        Assert.Equal([2, 4], WatchFrames.FragmentEnds([100, 100, 100, 100], baseSize: 10, maxBytes: 311));
    }

    [Fact]
    public void An_encoded_frame_is_the_response_with_its_watch_id_as_a_client_parses_it()
    {
        var body = WatchFrames.Body(new ResponseHeader { Revision = 9 }, [new Event { Kv = new KeyValue { Key = ByteString.CopyFromUtf8("k"), ModRevision = 9 } }]);

        var frame = WatchFrames.Frame(body, -1);
        var zero = WatchFrames.Frame(body, 0);
        var parsed = WatchResponse.Parser.ParseFrom(frame.ToArray());

        Assert.Equal(new WatchResponse { Header = new ResponseHeader { Revision = 9 }, WatchId = -1, Events = { new Event { Kv = new KeyValue { Key = ByteString.CopyFromUtf8("k"), ModRevision = 9 } } } }, parsed);
        Assert.Equal(frame.CalculateSize(), frame.ToArray().Length);
        Assert.Equal(body, zero.ToArray());
        Assert.Equal(parsed, frame.Parse());
    }

    private sealed class Unopenable : IStreamRewriter
    {
        public ValueTask<IMessage> RewriteResponseAsync(IMessage response, CancellationToken cancellationToken) =>
            throw new RpcException(new Status(StatusCode.DataLoss, "etcdshield: a value could not be opened"));
    }

    [Fact]
    public async Task Progress_requests_in_a_tight_loop_keep_one_progress_request_upstream_in_flight_and_share_its_answer()
    {
        using var bed = new RelayBed(watches: new ShieldOptions());
        var upstream = bed.Etcd.NextStream("Watch/Watch");
        var client = new WatchClient(bed);
        for (var i = 0; i < 1000; i++)
        {
            client.RequestProgress();
        }

        // The reader answers a create the policy refuses at once: when that answer comes, every request before it was read.
        Assert.True((await client.WatchAsync("/other/")).Canceled);
        var first = (WatchRequest)await upstream.Requests.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        var inFlight = upstream.Requests.TryRead(out _);
        upstream.Respond(new WatchResponse { Header = new ResponseHeader { Revision = 5 }, WatchId = -1 });

        // etcd 3.4's answer is passed on after a second one (see TryAnswerProgress).
        var second = (WatchRequest)await upstream.Requests.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        upstream.Respond(new WatchResponse { Header = new ResponseHeader { Revision = 5 }, WatchId = -1 });
        var answer = await client.NextAsync();
        Assert.True((await client.WatchAsync("/other/")).Canceled);

        Assert.NotNull(first.ProgressRequest);
        Assert.False(inFlight);
        Assert.NotNull(second.ProgressRequest);
        Assert.True(answer is { WatchId: -1, Header.Revision: 5 });
        Assert.False(client.HasWaiting);
        Assert.False(upstream.Requests.TryRead(out _));
    }
}
