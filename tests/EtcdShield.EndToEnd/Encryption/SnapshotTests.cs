using System.Globalization;
using System.Text;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using static EtcdShield.EndToEnd.Encryption.StoredValue;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// The acceptance at rest: after values are written through the proxy on every write path, neither a
/// snapshot taken with etcdctl through the proxy nor etcd's own files (WAL and database) contain any of them in
/// plaintext, while the keys are there as usual.
/// </summary>
public sealed class SnapshotTests(EncryptingProxy etcd) : IClassFixture<EncryptingProxy>
{
    [Fact]
    public async Task Neither_a_snapshot_through_the_proxy_nor_etcds_files_hold_a_plaintext_value()
    {
        var prefix = ShieldedEtcd.NewPrefix("snapshot");
        var id = Guid.NewGuid().ToString("N");
        var written = new Dictionary<string, string>
        {
            [prefix + "put"] = "SNAPSHOT-PUT-" + id,
            [prefix + "txn-success"] = "SNAPSHOT-TXN-SUCCESS-" + id,
            [prefix + "txn-nested"] = "SNAPSHOT-TXN-NESTED-" + id,
        };
        await etcd.PutAsync(prefix + "put", written[prefix + "put"]);
        await etcd.ProxyKv.TxnAsync(new TxnRequest
        {
            Success =
            {
                WritePathTests.Put(prefix + "txn-success", written[prefix + "txn-success"]),
                new RequestOp { RequestTxn = new TxnRequest { Success = { WritePathTests.Put(prefix + "txn-nested", written[prefix + "txn-nested"]) } } },
            },
        });
        var lease = (await new Lease.LeaseClient(etcd.ProxyChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 300 })).ID;
        var election = new Election.ElectionClient(etcd.ProxyChannel);
        var campaign = await election.CampaignAsync(new CampaignRequest { Name = Utf8(prefix + "election"), Lease = lease, Value = Utf8("SNAPSHOT-CAMPAIGN-" + id) });
        await election.ProclaimAsync(new ProclaimRequest { Leader = campaign.Leader, Value = Utf8("SNAPSHOT-PROCLAIM-" + id) });
        var etcdctl = etcd.Shield.Etcdctl(etcd.Pki);
        (await etcdctl.RunAsync("put", prefix + "etcdctl", "SNAPSHOT-ETCDCTL-" + id)).EnsureSuccess();
        string[] plaintexts = [.. written.Values, "SNAPSHOT-CAMPAIGN-" + id, "SNAPSHOT-PROCLAIM-" + id, "SNAPSHOT-ETCDCTL-" + id];

        var file = Path.Combine(etcd.Pki.Directory, "etcd.snapshot." + id[..8]);
        (await etcdctl.RunAsync("snapshot", "save", file)).EnsureSuccess();
        var snapshot = await File.ReadAllBytesAsync(file);
        var etcdFiles = new List<(string Path, byte[] Bytes)>();
        foreach (var path in Directory.EnumerateFiles(etcd.Etcd.DataDir, "*", SearchOption.AllDirectories))
        {
            etcdFiles.Add((path, await ReadLockedAsync(path, etcd.Pki.Directory)));
        }

        Assert.All(plaintexts, plaintext => Assert.False(Contains(snapshot, plaintext), $"the snapshot holds \"{plaintext}\" in plaintext"));
        Assert.All(written.Keys.Append(campaign.Leader.Key.ToStringUtf8()).Append(prefix + "etcdctl"), key => Assert.True(Contains(snapshot, key), $"the snapshot lacks the key {key}"));
        Assert.Contains(etcdFiles, f => f.Path.EndsWith(".wal", StringComparison.Ordinal));
        Assert.All(etcdFiles, f => Assert.All(plaintexts, plaintext => Assert.False(Contains(f.Bytes, plaintext), $"{f.Path} holds \"{plaintext}\" in plaintext")));
        // The identifier alone is in no value either: no part of a value leaks, not just the whole of it.
        Assert.False(Contains(snapshot, id), "the snapshot holds part of a value");
        Assert.Equal(string.Create(CultureInfo.InvariantCulture, $"SNAPSHOT-PROCLAIM-{id}"), (await election.LeaderAsync(new LeaderRequest { Name = Utf8(prefix + "election") })).Kv.Value.ToStringUtf8());
    }

    private static bool Contains(byte[] haystack, string needle) => haystack.AsSpan().IndexOf(Encoding.UTF8.GetBytes(needle)) >= 0;

    /// <summary>
    /// etcd holds an exclusive flock on its database, and .NET takes a shared one to open any file for reading,
    /// so the file is copied with cp (which takes none) and the copy read.
    /// </summary>
    private static async Task<byte[]> ReadLockedAsync(string path, string scratch)
    {
        var copy = Path.Combine(scratch, "copy-" + Guid.NewGuid().ToString("N"));
        (await ExternalCommand.RunAsync("/bin/cp", [path, copy])).EnsureSuccess();
        try
        {
            return await File.ReadAllBytesAsync(copy);
        }
        finally
        {
            File.Delete(copy);
        }
    }
}
