using System.Text;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Relay.Support;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// An operator runs with <c>--audit-hash-keys</c> because key names are sensitive (tenant names, user ids), and
/// someone who can read the audit file and the proxy's log (a log pipeline, a support bundle) looks for them.
/// A denied request, a denied watch and a tampered value each name a key to the client that sent it; neither
/// the audit file nor any log line may name it, as text or as hex.
/// </summary>
public sealed class AuditHashKeysLeakTests(EtcdWithPki fixture) : IClassFixture<EtcdWithPki>
{
    private static readonly string Protector = typeof(EtcdShield.Encryption.ValueProtector).FullName!;

    private const string DeniedKey = "/hk/secret/tenant-alpha-7f3e";
    private const string WatchedKey = "/hk/secret/tenant-gamma-51c0";
    private const string TamperedKey = "/hk/tampered/tenant-beta-9a2d";
    private TestPki Pki => fixture.Pki;

    [Fact]
    public async Task With_audit_hash_keys_no_denied_or_tampered_key_reaches_the_audit_file_or_the_log_but_the_client_hears_it()
    {
        var directory = Directory.CreateTempSubdirectory("etcdshield-hashkeys-").FullName;
        var policy = Path.Combine(directory, "policy.yaml");
        var audit = Path.Combine(directory, "audit.log");
        await File.WriteAllTextAsync(policy, """
            identities:
              - name: hk-reader
                match: { cn: hk-reader }
                keys: [{ prefix: /hk/public/, permission: read }]
            """);
        var reader = Pki.IssueClient("hk-reader", "hk-reader");
        try
        {
            await using var shield = await ShieldServer.StartAsync(Pki, fixture.Etcd.ClientUrl, flags: ["--policy-file", policy, "--audit-log", audit, "--audit-hash-keys", "--log-level", "Trace"]);
            using var readerChannel = GrpcClients.Channel(shield.ClientUrl, Pki, reader);
            using var adminChannel = GrpcClients.Channel(shield.ClientUrl, Pki);
            using var etcdChannel = GrpcChannel.ForAddress(fixture.Etcd.ClientUrl);

            var denied = await Assert.ThrowsAsync<RpcException>(() => new KV.KVClient(readerChannel).RangeAsync(new RangeRequest { Key = B(DeniedKey) }).ResponseAsync);

            await using var watch = new WatchSession(readerChannel);
            await watch.CreateAsync(new WatchCreateRequest { Key = B(WatchedKey), WatchId = 3 });
            var cancelled = await watch.NextAsync(r => r.WatchId == 3 && r.Canceled);

            await new KV.KVClient(adminChannel).PutAsync(new PutRequest { Key = B(TamperedKey), Value = B("sealed") });
            await new KV.KVClient(etcdChannel).PutAsync(new PutRequest { Key = B(TamperedKey), Value = B("planted plaintext") });
            var tampered = await Assert.ThrowsAsync<RpcException>(() => new KV.KVClient(adminChannel).RangeAsync(new RangeRequest { Key = B(TamperedKey) }).ResponseAsync);
            await shield.Logs.WaitForAsync(e => e.Is(Protector, "DecryptFailed") || e.Is(Protector, "PlaintextRefused"), TimeSpan.FromSeconds(5));

            // Every call above has its audit line (the denied range, the refused watch, the put, the tampered read).
            var lines = await Eventually.HoldsAsync(
                () => Task.FromResult(ReadShared(audit)),
                text => text.Split('\n').Count(l => l.Contains("\"outcome\":\"denied\"", StringComparison.Ordinal)) >= 2 && text.Contains("DATA_LOSS", StringComparison.Ordinal),
                TimeSpan.FromSeconds(10));

            Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
            Assert.Contains(DeniedKey, denied.Status.Detail, StringComparison.Ordinal);
            Assert.Contains(WatchedKey, cancelled.CancelReason, StringComparison.Ordinal);
            Assert.Equal(StatusCode.DataLoss, tampered.StatusCode);
            Assert.Contains(TamperedKey, tampered.Status.Detail, StringComparison.Ordinal);
            Assert.Contains("reason", lines, StringComparison.Ordinal);
            Assert.Contains("sha256", lines, StringComparison.Ordinal);

            var logged = string.Join("\n", shield.Logs.Entries.Select(e =>
                e + " " + string.Join(" ", e.Properties.Select(p => p.Value)) + " " + string.Join(" ", e.Scopes)));
            foreach (var key in new[] { DeniedKey, WatchedKey, TamperedKey })
            {
                var distinctive = key[(key.LastIndexOf('/') + 1)..];
                var hex = Convert.ToHexStringLower(Encoding.UTF8.GetBytes(distinctive));
                Assert.DoesNotContain(distinctive, lines, StringComparison.Ordinal);
                Assert.DoesNotContain(hex, lines, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain(distinctive, logged, StringComparison.Ordinal);
                Assert.DoesNotContain(hex, logged, StringComparison.OrdinalIgnoreCase);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static string ReadShared(string path)
    {
        if (!File.Exists(path))
        {
            return "";
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }
}
