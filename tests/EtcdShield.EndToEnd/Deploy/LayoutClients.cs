using System.Globalization;
using System.Text.Json;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>What every layout must give its clients: etcdctl and python3-etcd3 through the proxy, values sealed at rest, member lists naming the proxy.</summary>
internal static class LayoutClients
{
    /// <summary>The system Python, which has Debian's python3-etcd3; the one first on PATH may not.</summary>
    private const string Python = "/usr/bin/python3";

    private const string Script = """
        # python-etcd3 through EtcdShield: put, get, a compare on the value, a prefix read and a delete.
        # Usage: etcd3_layout.py HOST PORT CA_FILE CERT_FILE KEY_FILE PREFIX; prints one JSON object.
        import json
        import sys

        import etcd3

        host, port, ca, cert, key, prefix = sys.argv[1:7]
        client = etcd3.client(host=host, port=int(port), ca_cert=ca, cert_cert=cert, cert_key=key, timeout=10)
        client.put(prefix + "a", "python value")
        seen = {"get": client.get(prefix + "a")[0].decode()}
        ok, _ = client.transaction(
            compare=[client.transactions.value(prefix + "a") == "python value"],
            success=[client.transactions.put(prefix + "b", "swapped")],
            failure=[],
        )
        seen["txn"] = ok
        seen["prefix"] = sorted(m.key.decode() for _, m in client.get_prefix(prefix))
        seen["deleted"] = client.delete(prefix + "b")
        print(json.dumps(seen))
        """;

    public static async Task EtcdctlWorksAsync(string proxyUrl, string caFile, CertificatePaths client, string key)
    {
        var etcdctl = new Etcdctl(proxyUrl, caFile, client);

        var put = await etcdctl.RunAsync("put", key, "etcdctl value");
        var get = await etcdctl.RunAsync("get", key, "--print-value-only");

        Assert.True(put.Succeeded, put.ToString());
        Assert.Equal(["etcdctl value"], get.EnsureSuccess().StdOutLines);
    }

    public static async Task PythonEtcd3WorksAsync(string proxyUrl, string caFile, CertificatePaths client, string prefix, string scratch)
    {
        var url = new Uri(proxyUrl);
        var script = Path.Combine(scratch, "etcd3_layout.py");
        await File.WriteAllTextAsync(script, Script);

        var run = await ExternalCommand.RunAsync(
            Python,
            [script, url.Host, url.Port.ToString(CultureInfo.InvariantCulture), caFile, client.CertFile, client.KeyFile, prefix],
            environment: new Dictionary<string, string?> { ["PYTHONDONTWRITEBYTECODE"] = "1", ["PYTHONPATH"] = null, ["PYTHONHOME"] = null });

        Assert.True(run.Succeeded, run.ToString());
        using var seen = JsonDocument.Parse(run.StdOut);
        Assert.Equal("python value", seen.RootElement.GetProperty("get").GetString());
        Assert.True(seen.RootElement.GetProperty("txn").GetBoolean());
        Assert.Equal($"[\"{prefix}a\",\"{prefix}b\"]", seen.RootElement.GetProperty("prefix").GetRawText().Replace(" ", "", StringComparison.Ordinal));
        Assert.True(seen.RootElement.GetProperty("deleted").GetBoolean());
    }

    /// <summary>
    /// What kube-apiserver does besides reading and writing objects, as etcdctl calls: a lease for an event, the
    /// health key, the compactor's Txn on compact_rev_key and its Compact, and the member's status (storage size).
    /// </summary>
    public static async Task ApiServerCallsWorkAsync(string proxyUrl, string caFile, CertificatePaths client)
    {
        var etcdctl = new Etcdctl(proxyUrl, caFile, client);

        var grant = (await etcdctl.RunAsync("lease", "grant", "60")).EnsureSuccess();
        var lease = grant.StdOut.Split(' ')[1];
        var put = await etcdctl.RunAsync("put", "/registry/events/default/deploy-test", "event", "--lease=" + lease);
        var health = await etcdctl.RunAsync("get", "/registry/health");
        var compactor = await etcdctl.RunAsync(
            ["txn"],
            "version(\"compact_rev_key\") = \"0\"\n\nput compact_rev_key 1\n\nget compact_rev_key\n\n");
        using var header = JsonDocument.Parse((await etcdctl.RunAsync("get", "compact_rev_key", "-w", "json")).EnsureSuccess().StdOut);
        var revision = header.RootElement.GetProperty("header").GetProperty("revision").GetInt64();
        var compact = await etcdctl.RunAsync("compaction", revision.ToString(CultureInfo.InvariantCulture));
        var status = await etcdctl.RunAsync("endpoint", "status");
        var revoke = await etcdctl.RunAsync("lease", "revoke", lease);

        Assert.True(put.Succeeded, put.ToString());
        Assert.True(health.Succeeded, health.ToString());
        Assert.True(compactor.Succeeded, compactor.ToString());
        Assert.StartsWith("SUCCESS", compactor.StdOut, StringComparison.Ordinal);
        Assert.True(compact.Succeeded, compact.ToString());
        Assert.True(status.Succeeded, status.ToString());
        Assert.True(revoke.Succeeded, revoke.ToString());
    }

    /// <summary>The member list clients get names the proxy's advertised URL as the member's client URL.</summary>
    public static async Task MemberListNamesTheProxyAsync(string proxyUrl, string caFile, CertificatePaths client, string advertised)
    {
        var list = await new Etcdctl(proxyUrl, caFile, client).RunAsync("member", "list", "-w", "json");

        using var members = JsonDocument.Parse(list.EnsureSuccess().StdOut);
        var clientUrls = members.RootElement.GetProperty("members").EnumerateArray()
            .SelectMany(m => m.GetProperty("clientURLs").EnumerateArray().Select(u => u.GetString()))
            .ToList();
        Assert.Equal([advertised], clientUrls);
    }

    /// <summary>
    /// etcd has no TCP client listener: it listens on TCP only on <paramref name="nonClientPorts"/> (peer, metrics),
    /// and none of those answers the client API (etcd serves it on a plain-http peer listener too).
    /// </summary>
    public static async Task EtcdIsUnreachableOverTcpAsync(int etcdProcessId, IReadOnlySet<int> nonClientPorts, string caFile, CertificatePaths client, string key)
    {
        var listening = ListeningPorts.Of(etcdProcessId);

        Assert.Equal(nonClientPorts.Order(), listening.Select(e => e.Port).Order());
        foreach (var endpoint in listening)
        {
            foreach (var scheme in (string[])["https", "http"])
            {
                var etcdctl = new Etcdctl($"{scheme}://{endpoint}", caFile, client)
                {
                    DialTimeout = TimeSpan.FromSeconds(2),
                    CommandTimeout = TimeSpan.FromSeconds(3),
                };
                var direct = await etcdctl.RunAsync("get", key);
                Assert.False(direct.Succeeded, direct.ToString());
            }
        }
    }
}
