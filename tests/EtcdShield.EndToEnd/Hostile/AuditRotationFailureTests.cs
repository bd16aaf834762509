using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// The audit log cannot be rotated: where the rotated file must go there is a directory (file modes do not stop
/// root, a directory in the way does). The proxy must keep serving, count and report the records it could not
/// write, and write again once the way is clear; the audit writer never stops the host.
/// </summary>
public sealed class AuditRotationFailureTests(EtcdWithPki fixture) : IClassFixture<EtcdWithPki>
{
    private const string Dropped = "etcdshield.audit.dropped";
    private TestPki Pki => fixture.Pki;

    [Fact]
    public async Task A_rotation_blocked_by_a_directory_drops_and_counts_records_while_the_proxy_keeps_serving()
    {
        var directory = Directory.CreateTempSubdirectory("etcdshield-audit-rotation-").FullName;
        var audit = Path.Combine(directory, "audit.log");
        Directory.CreateDirectory(audit + ".1");
        await File.WriteAllTextAsync(Path.Combine(audit + ".1", "occupied"), "");
        try
        {
            await using var shield = await ShieldServer.StartAsync(Pki, fixture.Etcd.ClientUrl, flags: ["--audit-log", audit, "--audit-log-max-size", "1", "--audit-log-max-backups", "1"]);
            shield.ErrorsExpected = true;
            using var meters = new ProxyMeters(shield, EtcdShield.Audit.AuditLog.MeterName, Dropped);
            using var channel = GrpcClients.Channel(shield.ClientUrl, Pki);
            var kv = new KV.KVClient(channel);

            // Four audit lines of 300 KB reach the 1 MB limit: the fourth needs a rotation, which cannot happen.
            var bigKey = ByteString.CopyFromUtf8("audit/rotation/" + new string('k', 300_000));
            for (var i = 0; i < 6; i++)
            {
                await kv.RangeAsync(new RangeRequest { Key = bigKey });
            }

            await Eventually.HoldsAsync(() => Task.FromResult(meters.Total(Dropped, "write_failed")), n => n >= 3, TimeSpan.FromSeconds(10));
            using var http = new HttpClient();
            var health = await http.GetStringAsync(new Uri(shield.MetricsUrl + "/health"));
            for (var i = 0; i < 20; i++)
            {
                await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8($"audit/rotation/{i}"), Value = ByteString.CopyFromUtf8("served") });
            }

            var read = await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("audit/rotation/19") });
            var logged = await shield.Logs.WaitForAsync(e => e.Is("EtcdShield.Audit.AuditLog", "AuditWriteFailed"), TimeSpan.FromSeconds(10));

            Assert.Equal("served", read.Kvs.Single().Value.ToStringUtf8());
            Assert.Contains("audit log", logged.Message, StringComparison.Ordinal);
            Assert.Contains("\"status\":\"degraded\"", health, StringComparison.Ordinal);
            Assert.Contains("audit log not written", health, StringComparison.Ordinal);

            // The operator clears the way: the next record that needs a rotation gets it and is written.
            Directory.Delete(audit + ".1", recursive: true);
            await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("audit/rotation/after/" + new string('k', 300_000)) });
            await Eventually.HoldsAsync(
                () => Task.FromResult(ReadShared(audit)),
                text => text.Contains("audit/rotation/after/", StringComparison.Ordinal),
                TimeSpan.FromSeconds(10));
            var healed = await Eventually.HoldsAsync(
                () => http.GetStringAsync(new Uri(shield.MetricsUrl + "/health")),
                text => !text.Contains("audit log not written", StringComparison.Ordinal),
                TimeSpan.FromSeconds(10));

            Assert.True(File.Exists(audit + ".1"));
            Assert.Contains("\"status\":\"ok\"", healed, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }
}
