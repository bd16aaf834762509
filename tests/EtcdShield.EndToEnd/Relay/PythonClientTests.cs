using System.Globalization;
using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;

namespace EtcdShield.EndToEnd.Relay;

/// <summary>
/// A client that is not etcdctl: Debian's python3-etcd3 (gRPC from Python) through the encrypting proxy with a
/// client certificate, for put, get, get_prefix, transactions, a watch, delete and delete_prefix.
/// </summary>
public sealed class PythonClientTests(PythonClientTests.Fixture fixture) : IClassFixture<PythonClientTests.Fixture>
{
    /// <summary>The system Python, which has the Debian package; the one first on PATH may not.</summary>
    private const string Python = "/usr/bin/python3";

    public sealed class Fixture : ShieldFixture;

    private const string Script = """
        # python-etcd3 (Debian's python3-etcd3) through EtcdShield with a client certificate.
        # Usage: etcd3_client.py HOST PORT CA_FILE CERT_FILE KEY_FILE
        # Prints one JSON object with what each call returned; exits non-zero on any failure.
        import json
        import sys
        import threading

        import etcd3

        host, port, ca, cert, key = sys.argv[1:6]
        client = etcd3.client(host=host, port=int(port), ca_cert=ca, cert_cert=cert, cert_key=key, timeout=10)
        seen = {}

        client.put("py/a", "1")
        client.put("py/b", "2")
        value, meta = client.get("py/a")
        seen["get"] = value.decode()
        seen["get_key"] = meta.key.decode()
        seen["get_prefix"] = sorted([m.key.decode(), v.decode()] for v, m in client.get_prefix("py/"))

        ok, _ = client.transaction(
            compare=[client.transactions.value("py/a") == "1", client.transactions.version("py/b") > 0],
            success=[client.transactions.put("py/t", "yes")],
            failure=[client.transactions.put("py/t", "no")],
        )
        seen["txn_succeeded"] = ok
        ok, responses = client.transaction(
            compare=[client.transactions.value("py/a") == "nope"],
            success=[client.transactions.put("py/t2", "yes")],
            failure=[client.transactions.put("py/t2", "no"), client.transactions.get("py/t")],
        )
        seen["txn2_succeeded"] = ok
        seen["txn2_range"] = [v.decode() for v, _ in responses[1]]
        seen["t2"] = client.get("py/t2")[0].decode()

        # The watch starts at the next revision, so the put below is seen whether it lands before or after the
        # watch is established.
        client.put("py/w", "before")
        start = client.get("py/w")[1].mod_revision + 1
        events = []
        arrived = threading.Event()


        def on_event(response):
            events.extend(response.events)
            arrived.set()


        watch_id = client.add_watch_callback("py/w", on_event, start_revision=start)
        client.put("py/w", "watched")
        if not arrived.wait(10):
            sys.exit("no watch event within 10 s")
        client.cancel_watch(watch_id)
        seen["watch"] = [[e.key.decode(), e.value.decode()] for e in events]

        seen["delete"] = client.delete("py/a")
        seen["deleted_get"] = client.get("py/a")[0]
        seen["delete_prefix"] = client.delete_prefix("py/").deleted
        print(json.dumps(seen, separators=(",", ":")))
        """;

    [Fact]
    public async Task The_python_etcd3_client_works_through_the_proxy_with_its_client_certificate()
    {
        var client = ShieldServer.DefaultClient(fixture.Pki);
        var url = new Uri(fixture.Shield.ClientUrl);
        var script = Path.Combine(fixture.Pki.Directory, "etcd3_client.py");
        await File.WriteAllTextAsync(script, Script);

        var run = await ExternalCommand.RunAsync(
            Python,
            [script, url.Host, url.Port.ToString(CultureInfo.InvariantCulture), fixture.Pki.CaFile, client.CertFile, client.KeyFile],
            environment: new Dictionary<string, string?> { ["PYTHONDONTWRITEBYTECODE"] = "1", ["PYTHONPATH"] = null, ["PYTHONHOME"] = null });

        Assert.True(run.Succeeded, run.ToString());
        using var seen = JsonDocument.Parse(run.StdOut);
        var root = seen.RootElement;
        Assert.Equal("1", root.GetProperty("get").GetString());
        Assert.Equal("py/a", root.GetProperty("get_key").GetString());
        Assert.Equal("[[\"py/a\",\"1\"],[\"py/b\",\"2\"]]", root.GetProperty("get_prefix").GetRawText());
        Assert.True(root.GetProperty("txn_succeeded").GetBoolean());
        Assert.False(root.GetProperty("txn2_succeeded").GetBoolean());
        Assert.Equal("[\"yes\"]", root.GetProperty("txn2_range").GetRawText());
        Assert.Equal("no", root.GetProperty("t2").GetString());
        Assert.Equal("[[\"py/w\",\"watched\"]]", root.GetProperty("watch").GetRawText());
        Assert.True(root.GetProperty("delete").GetBoolean());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("deleted_get").ValueKind);
        Assert.Equal(4, root.GetProperty("delete_prefix").GetInt32());
    }
}
