using System.Diagnostics.Metrics;
using System.Text;
using System.Text.Json;
using EtcdShield.Audit;
using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Tls;
using Grpc.Core;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Audit;

public sealed class AuditLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-audit").FullName;
    private readonly IMeterFactory _meters = TestMeterFactory.Create();

    public void Dispose()
    {
        _meters.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static readonly Caller ApiServer = new(
        new ClientIdentity("kube-apiserver-etcd-client", [], [], [], new string('a', 64)),
        AccessPolicy.FromAllowFlags(["kube-apiserver-etcd-client"], [], [])[0],
        new AccessPolicy([], "test"),
        "127.0.0.1:40000");

    private AuditLog Log(bool hashKeys = false) =>
        new(new ShieldOptions { AuditLog = Path.Combine(_dir, "audit.log"), AuditHashKeys = hashKeys }, _meters, NullLogger<AuditLog>.Instance);

    private static AuditEntry Entry(bool denied = false, params KeyAccess[] keys) => new(
        new DateTimeOffset(2026, 11, 23, 18, 0, 0, 123, TimeSpan.Zero), ApiServer, "KV/Put", keys, denied,
        denied ? "etcdshield: permission denied: nope" : null, denied ? StatusCode.PermissionDenied : StatusCode.OK, TimeSpan.FromMicroseconds(1500));

    [Fact]
    public void The_dropped_counter_is_exported_at_zero_for_each_reason_with_an_audit_log_and_not_without()
    {
        using var dropped = new MetricCollector<long>(_meters, AuditLog.MeterName, "etcdshield.audit.dropped");

        using (new AuditLog(new ShieldOptions(), _meters, NullLogger<AuditLog>.Instance))
        {
            Assert.Empty(dropped.GetMeasurementSnapshot());
        }

        using var log = Log();

        // At zero from the start, so an alert's increase() counts the first record lost.
        Assert.Equal(
            ["queue_full=0", "write_failed=0"],
            dropped.GetMeasurementSnapshot().Select(m => $"{m.Tags["reason"]}={m.Value}").Order(StringComparer.Ordinal));
    }

    [Fact]
    public void One_json_line_with_who_what_where_and_how_it_ended()
    {
        using var log = Log();
        var line = log.Format(Entry(false, new KeyAccess(KeyRange.SingleKey("/registry/secrets/a"u8), KeyPermission.Write, "put")));

        Assert.Equal((byte)'\n', line[^1]);
        Assert.Single(line, (byte)'\n');
        using var json = JsonDocument.Parse(line);
        var root = json.RootElement;
        Assert.Equal("2026-11-23T18:00:00.123Z", root.GetProperty("time").GetString());
        Assert.Equal("cn:kube-apiserver-etcd-client", root.GetProperty("identity").GetString());
        Assert.Equal("127.0.0.1:40000", root.GetProperty("peer").GetString());
        Assert.Equal("KV/Put", root.GetProperty("method").GetString());
        var key = Assert.Single(root.GetProperty("keys").EnumerateArray().ToList());
        Assert.Equal("/registry/secrets/a", key.GetProperty("key").GetString());
        Assert.Equal("write", key.GetProperty("access").GetString());
        Assert.False(key.TryGetProperty("range_end", out _));
        Assert.Equal("allowed", root.GetProperty("outcome").GetString());
        Assert.Equal("OK", root.GetProperty("code").GetString());
        Assert.Equal(1.5, root.GetProperty("latency_ms").GetDouble());
    }

    [Fact]
    public void Denials_say_so_and_why()
    {
        using var log = Log();
        using var json = JsonDocument.Parse(log.Format(Entry(denied: true)));

        Assert.Equal("denied", json.RootElement.GetProperty("outcome").GetString());
        Assert.Equal("PERMISSION_DENIED", json.RootElement.GetProperty("code").GetString());
        Assert.Equal("etcdshield: permission denied: nope", json.RootElement.GetProperty("reason").GetString());
    }

    [Fact]
    public void A_certificate_name_that_is_not_valid_utf16_still_makes_a_line()
    {
        using var log = Log();
        var caller = ApiServer with { Certificate = new ClientIdentity("lone \ud800 surrogate", [], [], [], new string('a', 64)) };
        var entry = Entry() with { Caller = caller };

        using var json = JsonDocument.Parse(log.Format(entry));

        Assert.Equal("allowed", json.RootElement.GetProperty("outcome").GetString());
    }

    [Fact]
    public void Hashing_replaces_keys_by_their_sha256_and_binary_keys_become_hex()
    {
        using var hashed = Log(hashKeys: true);
        var text = Encoding.UTF8.GetString(hashed.Format(Entry(false, new KeyAccess(KeyRange.Prefix("/registry/"u8), KeyPermission.Read, "range"))));

        Assert.DoesNotContain("/registry/", text, StringComparison.Ordinal);
        Assert.Contains("\"key_sha256\":\"", text, StringComparison.Ordinal);
        Assert.Contains("\"range_end_sha256\":\"", text, StringComparison.Ordinal);

        using var plain = Log();
        var binary = Encoding.UTF8.GetString(plain.Format(Entry(false, new KeyAccess(KeyRange.SingleKey([0xff, 0x00]), KeyPermission.Read, "range"))));
        Assert.Contains("\"key_hex\":\"ff00\"", binary, StringComparison.Ordinal);
    }

    [Fact]
    public void A_size_limited_file_rotates_into_numbered_backups()
    {
        var path = Path.Combine(_dir, "rotating.log");
        using (var sink = new RotatingFileSink(path, maxBytes: 100, maxBackups: 2))
        {
            for (var i = 0; i < 10; i++)
            {
                sink.Write(Encoding.UTF8.GetBytes($"line {i} {new string('x', 30)}\n"));
            }
        }

        Assert.True(new FileInfo(path).Length <= 100);
        Assert.True(File.Exists(path + ".1"));
        Assert.True(File.Exists(path + ".2"));
        Assert.False(File.Exists(path + ".3"));
        Assert.StartsWith("line 9 ", File.ReadAllLines(path)[^1], StringComparison.Ordinal);
        Assert.All(File.ReadAllLines(path + ".1"), l => Assert.EndsWith(new string('x', 30), l, StringComparison.Ordinal));
    }

    [Fact]
    public void A_rotation_that_fails_drops_the_line_and_the_next_line_after_the_way_is_clear_rotates()
    {
        var path = Path.Combine(_dir, "blocked.log");
        Directory.CreateDirectory(path + ".1");
        File.WriteAllText(Path.Combine(path + ".1", "occupied"), "");
        using var sink = new RotatingFileSink(path, maxBytes: 100, maxBackups: 1);
        sink.Write(Encoding.UTF8.GetBytes(new string('a', 80) + "\n"));

        Assert.ThrowsAny<IOException>(() => sink.Write(Encoding.UTF8.GetBytes(new string('b', 80) + "\n")));
        Assert.ThrowsAny<IOException>(() => sink.Write(Encoding.UTF8.GetBytes(new string('c', 80) + "\n")));

        Directory.Delete(path + ".1", recursive: true);
        sink.Write(Encoding.UTF8.GetBytes(new string('d', 80) + "\n"));
        sink.Flush();
        Assert.Equal(new string('a', 80), File.ReadAllLines(path + ".1").Single());
        Assert.Equal(new string('d', 80), ReadShared(path).TrimEnd('\n'));
    }

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }
}
