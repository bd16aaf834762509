using System.Globalization;
using System.Text.Json;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Gateway;

/// <summary>
/// OpenStack's etcd3gw (Debian's python3-etcd3gw 2.0.0), a client that speaks only the JSON gateway, through the
/// encrypting proxy with a client certificate: create, get, get_prefix, get_all, replace, delete, delete_prefix,
/// status, members, a lease's whole life, watch, watch_prefix and watch_once with another client writing, and
/// locks. What it wrote reads back through the proxy (also with etcdctl) and is sealed in etcd.
/// </summary>
public sealed class Etcd3gwClientTests(Etcd3gwClientTests.Fixture fixture) : IClassFixture<Etcd3gwClientTests.Fixture>
{
    /// <summary>The system Python, which has the Debian package; the one first on PATH may not.</summary>
    private const string Python = "/usr/bin/python3";

    private const string Prefix = "e3gw/";

    /// <summary>Its own etcd: the client's get_all lists every key from "AA==" on, and locks live under /locks/.</summary>
    public sealed class Fixture : ShieldFixture
    {
        private protected override bool OwnsEtcd => true;
    }

    private const string Script = """
        # python3-etcd3gw (Debian 2.0.0) through an etcd JSON gateway over mutual TLS.
        # Usage: etcd3gw_client.py HOST PORT CA_FILE CERT_FILE KEY_FILE PREFIX
        # Prints one JSON object with what each call returned; exits non-zero on any failure.
        import json
        import sys

        from etcd3gw.client import Etcd3Client

        host, port, ca, cert, key, prefix = sys.argv[1:7]


        def connect():
            return Etcd3Client(host=host, port=int(port), protocol="https", ca_cert=ca, cert_cert=cert,
                               cert_key=key, timeout=10, api_path="/v3/")


        client = connect()
        other = connect()
        seen = {}
        kept = prefix + "kept/"
        gone = prefix + "gone/"


        def pairs(items):
            return [[meta["key"].decode(), value.decode()] for value, meta in items]


        def revision():
            return int(client.status()["header"]["revision"])


        seen["create"] = client.create(kept + "a", "alpha")
        seen["create_existing"] = client.create(kept + "a", "not written")
        seen["put"] = client.put(kept + "b", "bravo")
        seen["get"] = [v.decode() for v in client.get(kept + "a")]
        seen["get_missing"] = client.get(kept + "missing")
        seen["get_prefix"] = pairs(client.get_prefix(kept))
        seen["get_prefix_descending"] = pairs(client.get_prefix(kept, sort_order="descend", sort_target="key"))
        # etcd3gw 2.0.0 base64-encodes get_all's already encoded "\0", so it ranges from the key "AA==" on: the
        # prefix sorts after it ("e" > "A") and everything under it is listed.
        seen["get_all"] = pairs(client.get_all())
        seen["replace"] = client.replace(kept + "a", "alpha", "alpha-replaced")
        seen["replace_stale"] = client.replace(kept + "a", "alpha", "not written")
        seen["after_replace"] = [v.decode() for v in client.get(kept + "a")]

        status = client.status()
        seen["status_version"] = status["version"]
        seen["status_has_leader"] = int(status["leader"]) > 0
        seen["members"] = [[m["name"], m["clientURLs"]] for m in client.members()]

        lease = client.lease(ttl=60)
        client.put(kept + "leased", "held", lease=lease)
        seen["lease_ttl"] = lease.ttl()
        seen["lease_refresh"] = lease.refresh()
        seen["lease_keys"] = [k.decode() for k in lease.keys()]
        seen["lease_revoke"] = lease.revoke()
        seen["leased_after_revoke"] = client.get(kept + "leased")

        # Each watch starts at the next revision, so the other client's put is seen whether it lands before or after
        # the watch is established.
        start = revision() + 1
        events, cancel = client.watch(kept + "w", start_revision=start)
        other.put(kept + "w", "watched")
        event = next(events)
        cancel()
        seen["watch"] = [event["type"] if "type" in event else "PUT", event["kv"]["key"].decode(), event["kv"]["value"].decode()]

        start = revision() + 1
        events, cancel = client.watch_prefix(kept + "p/", start_revision=start)
        other.put(kept + "outside", "not watched")
        other.put(kept + "p/1", "one")
        other.delete(kept + "p/1")
        first = next(events)
        second = next(events)
        cancel()
        seen["watch_prefix"] = [[e.get("type", "PUT"), e["kv"]["key"].decode(), e["kv"].get("value", b"").decode()] for e in (first, second)]

        # A watch event far larger than a TLS record or a socket read: etcd3gw parses each HTTP chunk as one JSON
        # document, so the answer must come as one chunk however large.
        big = "b" * (256 * 1024)
        start = revision() + 1
        events, cancel = client.watch(gone + "big", start_revision=start)
        other.put(gone + "big", big)
        event = next(events)
        cancel()
        seen["watch_big"] = len(event["kv"]["value"]) == len(big) and event["kv"]["value"].decode() == big

        start = revision() + 1
        other.put(kept + "once", "once")
        once = client.watch_once(kept + "once", timeout=10, start_revision=start)
        seen["watch_once"] = [once["kv"]["key"].decode(), once["kv"]["value"].decode()]

        lock = client.lock("gw-lock", ttl=60)
        seen["lock_acquire"] = lock.acquire()
        seen["lock_is_acquired"] = lock.is_acquired()
        seen["lock_contended"] = other.lock("gw-lock", ttl=60).acquire()
        seen["lock_refresh"] = lock.refresh()
        seen["lock_release"] = lock.release()
        seen["lock_after_release"] = lock.is_acquired()
        with client.lock("gw-context", ttl=60) as held:
            seen["context_lock_held"] = held.is_acquired()
        seen["context_lock_after"] = client.get("/locks/gw-context")

        client.put(gone + "1", "one")
        client.put(gone + "2", "two")
        client.put(gone + "3", "three")
        seen["delete"] = client.delete(gone + "3")
        seen["delete_missing"] = client.delete(gone + "3")
        seen["delete_prefix"] = client.delete_prefix(gone)
        seen["after_delete_prefix"] = client.get_prefix(gone)
        print(json.dumps(seen, separators=(",", ":")))
        """;

    [Fact]
    public async Task Etcd3gw_works_through_the_encrypting_proxy_and_what_it_writes_is_sealed()
    {
        var client = ShieldServer.DefaultClient(fixture.Pki);
        var url = new Uri(fixture.Shield.ClientUrl);
        var script = Path.Combine(fixture.Pki.Directory, "etcd3gw_client.py");
        await File.WriteAllTextAsync(script, Script);

        var run = await ExternalCommand.RunAsync(
            Python,
            [script, url.Host, url.Port.ToString(CultureInfo.InvariantCulture), fixture.Pki.CaFile, client.CertFile, client.KeyFile, Prefix],
            environment: new Dictionary<string, string?>
            {
                ["PYTHONDONTWRITEBYTECODE"] = "1",
                ["PYTHONPATH"] = null,
                ["PYTHONHOME"] = null,
                // requests lets these override the client's own ca_cert.
                ["REQUESTS_CA_BUNDLE"] = null,
                ["CURL_CA_BUNDLE"] = null,
            });

        Assert.True(run.Succeeded, run.ToString());
        using var seen = JsonDocument.Parse(run.StdOut);
        var root = seen.RootElement;
        Assert.True(root.GetProperty("create").GetBoolean());
        Assert.False(root.GetProperty("create_existing").GetBoolean());
        Assert.True(root.GetProperty("put").GetBoolean());
        Assert.Equal("""["alpha"]""", root.GetProperty("get").GetRawText());
        Assert.Equal("[]", root.GetProperty("get_missing").GetRawText());
        Assert.Equal("""[["e3gw/kept/a","alpha"],["e3gw/kept/b","bravo"]]""", root.GetProperty("get_prefix").GetRawText());
        Assert.Equal("""[["e3gw/kept/b","bravo"],["e3gw/kept/a","alpha"]]""", root.GetProperty("get_prefix_descending").GetRawText());
        Assert.Equal("""[["e3gw/kept/a","alpha"],["e3gw/kept/b","bravo"]]""", root.GetProperty("get_all").GetRawText());
        Assert.True(root.GetProperty("replace").GetBoolean());
        Assert.False(root.GetProperty("replace_stale").GetBoolean());
        Assert.Equal("""["alpha-replaced"]""", root.GetProperty("after_replace").GetRawText());
        Assert.Equal("3.4.23", root.GetProperty("status_version").GetString());
        Assert.True(root.GetProperty("status_has_leader").GetBoolean());
        var member = Assert.Single(root.GetProperty("members").EnumerateArray().ToList());
        Assert.Equal(fixture.Etcd.Name, member[0].GetString());
        Assert.Equal([fixture.Shield.ClientUrl], member[1].EnumerateArray().Select(u => u.GetString()));
        Assert.InRange(root.GetProperty("lease_ttl").GetInt32(), 1, 60);
        Assert.Equal(60, root.GetProperty("lease_refresh").GetInt32());
        Assert.Equal("""["e3gw/kept/leased"]""", root.GetProperty("lease_keys").GetRawText());
        Assert.True(root.GetProperty("lease_revoke").GetBoolean());
        Assert.Equal("[]", root.GetProperty("leased_after_revoke").GetRawText());
        Assert.Equal("""["PUT","e3gw/kept/w","watched"]""", root.GetProperty("watch").GetRawText());
        Assert.Equal("""[["PUT","e3gw/kept/p/1","one"],["DELETE","e3gw/kept/p/1",""]]""", root.GetProperty("watch_prefix").GetRawText());
        Assert.True(root.GetProperty("watch_big").GetBoolean());
        Assert.Equal("""["e3gw/kept/once","once"]""", root.GetProperty("watch_once").GetRawText());
        Assert.True(root.GetProperty("lock_acquire").GetBoolean());
        Assert.True(root.GetProperty("lock_is_acquired").GetBoolean());
        Assert.False(root.GetProperty("lock_contended").GetBoolean());
        Assert.Equal(60, root.GetProperty("lock_refresh").GetInt32());
        Assert.True(root.GetProperty("lock_release").GetBoolean());
        Assert.False(root.GetProperty("lock_after_release").GetBoolean());
        Assert.True(root.GetProperty("context_lock_held").GetBoolean());
        Assert.Equal("[]", root.GetProperty("context_lock_after").GetRawText());
        Assert.True(root.GetProperty("delete").GetBoolean());
        Assert.False(root.GetProperty("delete_missing").GetBoolean());
        Assert.True(root.GetProperty("delete_prefix").GetBoolean());
        Assert.Equal("[]", root.GetProperty("after_delete_prefix").GetRawText());

        var throughProxy = (await fixture.ThroughProxy.RunAsync("get", "--prefix", Prefix + "kept/")).EnsureSuccess();
        Assert.Equal(
            ["e3gw/kept/a", "alpha-replaced", "e3gw/kept/b", "bravo", "e3gw/kept/once", "once", "e3gw/kept/outside", "not watched", "e3gw/kept/w", "watched"],
            throughProxy.StdOutLines);
        using var direct = GrpcChannels.ToEtcd(fixture.Etcd);
        var stored = await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(Prefix), RangeEnd = ByteString.CopyFromUtf8("e3gw0") });
        var plaintexts = new Dictionary<string, string>
        {
            ["e3gw/kept/a"] = "alpha-replaced",
            ["e3gw/kept/b"] = "bravo",
            ["e3gw/kept/once"] = "once",
            ["e3gw/kept/outside"] = "not watched",
            ["e3gw/kept/w"] = "watched",
        };
        Assert.Equal(plaintexts.Keys, stored.Kvs.Select(kv => kv.Key.ToStringUtf8()));
        foreach (var kv in stored.Kvs)
        {
            StoredValue.AssertSealed(kv.Value, plaintexts[kv.Key.ToStringUtf8()]);
        }
    }
}
