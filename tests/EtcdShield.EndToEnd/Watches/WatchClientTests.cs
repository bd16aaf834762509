using System.Globalization;
using System.Text;
using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Watches;

/// <summary>
/// Real third-party clients watching from a past revision while writes go on: etcdctl (Go clientv3) and Debian's
/// python3-etcd3 see through the proxy the events they see against etcd, every field of every event.
/// </summary>
[Collection(WatchEtcd.Name)]
public sealed class WatchClientTests(WatchFixture fixture)
{
    /// <summary>The system Python, which has the Debian package; the one first on PATH may not.</summary>
    private const string Python = "/usr/bin/python3";

    private const string Script = """
        # Usage: watch.py HOST PORT PREFIX START [CA CERT KEY]
        # Watches PREFIX (with previous values) and PREFIX + "k1" from START on one stream, until the prefix watch
        # has seen PREFIX + "done" put and the key watch the event of the same revision; prints every event as the
        # base64 of its protobuf bytes, in one JSON object.
        import base64
        import json
        import sys
        import threading

        import etcd3

        host, port, prefix, start = sys.argv[1:5]
        tls = dict(ca_cert=sys.argv[5], cert_cert=sys.argv[6], cert_key=sys.argv[7]) if len(sys.argv) > 5 else {}
        client = etcd3.client(host=host, port=int(port), timeout=10, **tls)
        seen = {"prefix": [], "key": []}
        done = {"at": None}
        lock = threading.Lock()
        finished = threading.Event()
        failures = []


        def on(name):
            def callback(response):
                if isinstance(response, Exception):
                    failures.append(repr(response))
                    finished.set()
                    return
                with lock:
                    for event in response.events:
                        seen[name].append(event._event)
                        if name == "prefix" and event._event.kv.key == (prefix + "done").encode():
                            done["at"] = event._event.kv.mod_revision
                    if done["at"] is not None and any(e.kv.mod_revision == done["at"] for e in seen["key"]):
                        finished.set()
            return callback


        ids = [
            client.add_watch_prefix_callback(prefix, on("prefix"), start_revision=int(start), prev_kv=True),
            client.add_watch_callback(prefix + "k1", on("key"), start_revision=int(start)),
        ]
        if not finished.wait(20) or failures:
            sys.exit("watch did not finish: " + ", ".join(failures))
        for watch_id in ids:
            client.cancel_watch(watch_id)
        print(json.dumps({name: [base64.b64encode(e.SerializeToString()).decode() for e in events] for name, events in seen.items()}))
        """;

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task Etcdctl_watching_a_prefix_from_a_revision_prints_through_the_proxy_what_etcd_sends(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("etcdctl-watch");
        var load = new Workload(proxy.Channel, p);
        var from = await load.PutAsync("k1", "first");
        await load.RunAsync(writers: 2, operations: 20, seed: 21);
        string[] watch = ["watch", "--prefix", "--prev-kv", "--rev=" + from.ToString(CultureInfo.InvariantCulture), "-w", "json", p];
        await using var direct = new EtcdctlTarget(fixture.Etcd.ClientUrl).Start(watch);
        await using var proxied = EtcdctlTarget.Proxy(proxy.Shield, fixture.Pki).Start(watch);

        await load.RunAsync(writers: 2, operations: 20, seed: 22);
        await load.PutAsync("done", "done");
        var done = $"\"key\":\"{Convert.ToBase64String(Encoding.UTF8.GetBytes(p + "done"))}\"";
        await direct.WaitForStdOutAsync(line => line.Contains(done, StringComparison.Ordinal), TimeSpan.FromSeconds(15));
        await proxied.WaitForStdOutAsync(line => line.Contains(done, StringComparison.Ordinal), TimeSpan.FromSeconds(15));

        var sent = await WatchTranscript.ReadAsync(FromEtcdctl(direct.StdOut), proxy.OpenAsync);
        var seen = await WatchTranscript.ReadAsync(FromEtcdctl(proxied.StdOut), null);
        seen.AssertConsistent();
        Assert.True(sent.Events(0).Count > 40, $"only {sent.Events(0).Count} events");
        WatchTranscript.AssertSameLines(sent.Events(0), seen.Events(0), "events of watch 0");
    }

    [Theory]
    [MemberData(nameof(WatchFixture.Modes), MemberType = typeof(WatchFixture))]
    public async Task Python_etcd3_watches_see_through_the_proxy_what_they_see_against_etcd(string mode)
    {
        var proxy = await fixture.ProxyAsync(mode);
        var p = SharedEtcd.NewPrefix("python-watch");
        var load = new Workload(proxy.Channel, p);
        var from = await load.PutAsync("k1", "first");
        await load.RunAsync(writers: 2, operations: 20, seed: 31);
        var script = Path.Combine(fixture.Pki.Directory, "etcd3_watch.py");
        await File.WriteAllTextAsync(script, Script);
        var client = ShieldServer.DefaultClient(fixture.Pki);
        var etcd = new Uri(fixture.Etcd.ClientUrl);
        var shield = new Uri(proxy.Shield.ClientUrl);
        var start = from.ToString(CultureInfo.InvariantCulture);
        var direct = RunAsync([script, etcd.Host, Port(etcd), p, start]);
        var proxied = RunAsync([script, shield.Host, Port(shield), p, start, fixture.Pki.CaFile, client.CertFile, client.KeyFile]);

        await load.RunAsync(writers: 2, operations: 20, seed: 32);
        var close = new TxnRequest();
        close.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = load.Key("k1"), Value = ByteString.CopyFromUtf8("end") } });
        close.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = load.Key("done"), Value = ByteString.CopyFromUtf8("done") } });
        await new KV.KVClient(proxy.Channel).TxnAsync(close);

        var (directRun, proxiedRun) = (await direct, await proxied);
        Assert.True(directRun.Succeeded, directRun.ToString());
        Assert.True(proxiedRun.Succeeded, proxiedRun.ToString());
        var sent = await WatchTranscript.ReadAsync(FromPython(directRun.StdOut), proxy.OpenAsync);
        var seen = await WatchTranscript.ReadAsync(FromPython(proxiedRun.StdOut), null);
        Assert.True(sent.Events(0).Count > 40, $"only {sent.Events(0).Count} events");
        Assert.NotEmpty(sent.Events(1));
        WatchTranscript.AssertSameLines(sent.Events(0), seen.Events(0), "events of watch 0");
        WatchTranscript.AssertSameLines(sent.Events(1), seen.Events(1), "events of watch 1");
    }

    private static string Port(Uri url) => url.Port.ToString(CultureInfo.InvariantCulture);

    private static Task<CommandResult> RunAsync(IEnumerable<string> arguments) =>
        ExternalCommand.RunAsync(
            Python,
            arguments,
            environment: new Dictionary<string, string?> { ["PYTHONDONTWRITEBYTECODE"] = "1", ["PYTHONPATH"] = null, ["PYTHONHOME"] = null });

    /// <summary>The prefix watch's events as watch 0, the key watch's as watch 1, one response each.</summary>
    private static List<WatchResponse> FromPython(string stdout)
    {
        using var document = JsonDocument.Parse(stdout);
        return
        [
            .. new[] { "prefix", "key" }.SelectMany((name, id) => document.RootElement.GetProperty(name).EnumerateArray().Select(e => new WatchResponse
            {
                WatchId = id,
                Events = { Event.Parser.ParseFrom(Convert.FromBase64String(e.GetString()!)) },
            })),
        ];
    }

    /// <summary>etcdctl's <c>-w json</c> lines (Go's encoding of clientv3's WatchResponse) as watch 0's responses,
    /// after its created answer (which etcdctl does not print).</summary>
    private static List<WatchResponse> FromEtcdctl(string stdout)
    {
        var responses = new List<WatchResponse> { new() { Created = true } };
        foreach (var line in stdout.Split('\n').Where(l => l.StartsWith('{')))
        {
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            var response = new WatchResponse { Header = new ResponseHeader { Revision = root.GetProperty("Header").GetProperty("revision").GetInt64() } };
            foreach (var e in root.GetProperty("Events").EnumerateArray())
            {
                response.Events.Add(new Event
                {
                    Type = e.TryGetProperty("type", out var type) ? (Event.Types.EventType)type.GetInt32() : Event.Types.EventType.Put,
                    Kv = Kv(e.GetProperty("kv")),
                    PrevKv = e.TryGetProperty("prev_kv", out var prev) ? Kv(prev) : null,
                });
            }

            responses.Add(response);
        }

        return responses;
    }

    private static KeyValue Kv(JsonElement kv)
    {
        long Number(string name) => kv.TryGetProperty(name, out var n) ? n.GetInt64() : 0;
        ByteString Bytes(string name) => kv.TryGetProperty(name, out var b) ? ByteString.FromBase64(b.GetString()) : ByteString.Empty;
        return new KeyValue
        {
            Key = Bytes("key"),
            Value = Bytes("value"),
            CreateRevision = Number("create_revision"),
            ModRevision = Number("mod_revision"),
            Version = Number("version"),
            Lease = Number("lease"),
        };
    }
}
