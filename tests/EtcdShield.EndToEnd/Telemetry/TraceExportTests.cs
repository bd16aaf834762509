using System.Diagnostics;
using System.Net.Sockets;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Otlp;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Telemetry;

/// <summary>
/// Traces from a real proxy in front of a real etcd to a real OTLP receiver: the request span joins the client's
/// W3C trace, the call to etcd is its child and is what etcd is told is its parent, KEK calls show beneath the
/// request that needed them, and spans never carry a value, nor a key under --audit-hash-keys.
/// </summary>
public sealed class TraceExportTests(TestPki pki) : IClassFixture<TestPki>
{
    [Fact]
    public async Task A_put_is_a_request_span_in_the_clients_trace_with_its_etcd_call_beneath_it_and_etcd_is_told_that_call_is_its_parent()
    {
        var etcd = await SharedEtcd.GetAsync();
        await using var recorder = await UpstreamRecorder.StartAsync(etcd.ClientUrl);
        await using var receiver = await TestOtlpReceiver.StartAsync();
        await using var shield = await ShieldServer.StartAsync(pki, recorder.Url, flags: ["--otlp-endpoint", receiver.GrpcEndpoint]);
        using var channel = GrpcChannels.ToProxy(shield, pki);
        var kv = new KV.KVClient(channel);
        var key = SharedEtcd.NewPrefix("traced") + "put";
        var value = "value-" + Guid.NewGuid().ToString("N");
        var unsampled = ActivityTraceId.CreateRandom().ToHexString();
        var trace = ActivityTraceId.CreateRandom().ToHexString();
        var clientSpan = ActivitySpanId.CreateRandom().ToHexString();

        // Not sampled by the client, and the ratio is 0: no trace. Its spans would be queued before the next request's.
        await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value) }, TraceParent(unsampled, clientSpan, sampled: false));
        await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value) }, TraceParent(trace, clientSpan, sampled: true));
        var spans = await receiver.TraceAsync(trace, s => s.Any(IsRequest) && s.Any(IsUpstream));

        var request = Assert.Single(spans, IsRequest);
        var upstream = Assert.Single(spans, IsUpstream);
        Assert.Equal(("etcdshield", "EtcdShield.Relay", clientSpan), (request.Service, request.Scope, request.ParentSpanId));
        Assert.Equal("Put", request.Attribute("rpc.method")?.StringValue);
        Assert.Equal("etcdserverpb.KV", request.Attribute("rpc.service")?.StringValue);
        Assert.Equal("cn:" + ShieldServer.ClientName, request.Attribute("etcdshield.identity")?.StringValue);
        Assert.Equal(1, request.Attribute("etcdshield.keys")?.IntValue);
        Assert.Equal(0, request.Attribute("rpc.grpc.status_code")?.IntValue);
        Assert.Equal(request.SpanId, upstream.ParentSpanId);
        Assert.Equal($"00-{trace}-{upstream.SpanId}-01", recorder.TraceParents("/etcdserverpb.KV/Put")[^1]);
        Assert.DoesNotContain(receiver.Spans, s => s.TraceId == unsampled);
        Assert.DoesNotContain(receiver.Spans.SelectMany(s => s.AttributeTexts()), text => text.Contains(value, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_range_that_unwraps_its_data_key_shows_the_unwrap_beneath_the_request_and_under_audit_hash_keys_no_span_names_the_key()
    {
        var etcd = await SharedEtcd.GetAsync();
        await using var receiver = await TestOtlpReceiver.StartAsync();
        var kek = ShieldServer.WriteDevelopmentKey(pki.Directory);
        var key = SharedEtcd.NewPrefix("traced") + "range-key";
        await using (var writer = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: ["--encryption-key-file", kek]))
        {
            using var channel = GrpcChannels.ToProxy(writer, pki);
            await new KV.KVClient(channel).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8("v") });
        }

        // A second proxy has not seen the data key: it unwraps it with the KEK to open the value.
        await using var shield = await ShieldServer.StartAsync(
            pki, etcd.ClientUrl, flags: ["--encryption-key-file", kek, "--audit-hash-keys", "--otlp-endpoint", receiver.HttpEndpoint, "--otlp-protocol", "http/protobuf"]);
        using var reader = GrpcChannels.ToProxy(shield, pki);
        var trace = ActivityTraceId.CreateRandom().ToHexString();
        var range = await new KV.KVClient(reader).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key) }, TraceParent(trace, ActivitySpanId.CreateRandom().ToHexString(), sampled: true));
        var spans = await receiver.TraceAsync(trace, s => s.Any(IsRequest) && s.Any(IsUpstream) && s.Any(x => x.Name == "kek.unwrap"));

        Assert.Equal("v", range.Kvs.Single().Value.ToStringUtf8());
        var request = Assert.Single(spans, IsRequest);
        var unwrap = Assert.Single(spans, s => s.Name == "kek.unwrap");
        Assert.Equal(("EtcdShield.Keys", request.SpanId), (unwrap.Scope, unwrap.ParentSpanId));
        Assert.Equal(1, request.Attribute("etcdshield.keys")?.IntValue);
        Assert.All(spans.SelectMany(s => s.AttributeTexts().Append(s.Name)), text => Assert.DoesNotContain("range-key", text, StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_ratio_1_a_request_without_a_traceparent_starts_a_trace_of_its_own()
    {
        var etcd = await SharedEtcd.GetAsync();
        await using var recorder = await UpstreamRecorder.StartAsync(etcd.ClientUrl);
        await using var receiver = await TestOtlpReceiver.StartAsync();
        await using var shield = await ShieldServer.StartAsync(pki, recorder.Url, flags: ["--otlp-endpoint", receiver.GrpcEndpoint, "--trace-sampling-ratio", "1"]);
        using var channel = GrpcChannels.ToProxy(shield, pki);
        var key = SharedEtcd.NewPrefix("traced") + "root";

        await new KV.KVClient(channel).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8("v") });
        // Other proxies of the test process are traced by this one's provider too; etcd's side names this proxy's trace.
        var sent = Assert.Single(recorder.TraceParents("/etcdserverpb.KV/Put"))!.Split('-');
        var spans = await receiver.TraceAsync(sent[1], s => s.Any(IsRequest) && s.Any(IsUpstream));

        var request = Assert.Single(spans, IsRequest);
        var upstream = Assert.Single(spans, IsUpstream);
        Assert.Equal("", request.ParentSpanId);
        Assert.Equal((request.SpanId, sent[2], "01"), (upstream.ParentSpanId, upstream.SpanId, sent[3]));
    }

    [Fact]
    public async Task A_collector_that_is_not_there_fails_no_request()
    {
        var etcd = await SharedEtcd.GetAsync();
        int closedPort;
        using (var listener = new TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            listener.Start();
            closedPort = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        }

        await using var shield = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: ["--otlp-endpoint", $"http://127.0.0.1:{closedPort}", "--trace-sampling-ratio", "1"]);
        using var channel = GrpcChannels.ToProxy(shield, pki);
        var kv = new KV.KVClient(channel);
        var prefix = SharedEtcd.NewPrefix("traced-dead");

        // More spans than one export batch, all while the exporter fails to connect.
        for (var i = 0; i < 600; i++)
        {
            await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(prefix + i), Value = ByteString.CopyFromUtf8("v") });
        }

        var count = await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(prefix), RangeEnd = ByteString.CopyFromUtf8(prefix[..^1] + "0"), CountOnly = true });
        Assert.Equal(600, count.Count);
    }

    private static bool IsRequest(ReceivedSpan span) => span.Span.Kind == Span.Types.SpanKind.Server && span.Scope == "EtcdShield.Relay";

    private static bool IsUpstream(ReceivedSpan span) => span.Span.Kind == Span.Types.SpanKind.Client && span.Scope == "EtcdShield.Relay";

    private static Metadata TraceParent(string traceId, string spanId, bool sampled) =>
        new() { { "traceparent", $"00-{traceId}-{spanId}-{(sampled ? "01" : "00")}" } };
}
