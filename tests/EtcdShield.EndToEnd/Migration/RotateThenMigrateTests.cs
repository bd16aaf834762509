using System.Collections.Concurrent;
using EtcdShield.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Keys;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.EndToEnd.Migration;

/// <summary>
/// A full key rotation: values written under KEK 1, the proxy switched to KEK 2 (KEK 1 still able to
/// decrypt), `etcdshield migrate` run while etcdctl keeps writing through the proxy. Afterwards no write is
/// lost, every stored value is sealed under KEK 2, and a proxy that no longer has KEK 1 reads everything.
/// </summary>
public sealed class RotateThenMigrateTests : IDisposable
{
    private readonly TestPki _pki = new();
    private readonly string _keys = Directory.CreateTempSubdirectory("etcdshield-rotation-").FullName;

    public void Dispose()
    {
        _pki.Dispose();
        Directory.Delete(_keys, recursive: true);
    }

    [Fact]
    public async Task Rotation_then_migration_under_concurrent_writes_loses_nothing_and_retires_the_old_key()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        var oldKek = ShieldServer.WriteDevelopmentKey(_keys);
        var newKek = ShieldServer.WriteDevelopmentKey(_keys);
        var newKekId = KekIdOf(newKek);

        var expected = new ConcurrentDictionary<string, string>();
        await using (var before = await ShieldServer.StartAsync(_pki, etcd.ClientUrl, flags: ["--encryption-key-file", oldKek]))
        {
            using var channel = ProxyChannel(before);
            var kv = new KV.KVClient(channel);
            for (var i = 0; i < 150; i++)
            {
                await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8($"/rot/old/{i:D3}"), Value = ByteString.CopyFromUtf8($"old-{i}") });
                expected[$"/rot/old/{i:D3}"] = $"old-{i}";
            }
        }

        // Legacy plaintext written straight into etcd before the proxy existed, which migrate is told to expect.
        var direct = new Etcdctl(etcd.ClientUrl);
        (await direct.RunAsync("put", "/rot/legacy", "from-before")).EnsureSuccess();
        expected["/rot/legacy"] = "from-before";

        await using var rotated = await ShieldServer.StartAsync(
            _pki, etcd.ClientUrl, flags: ["--encryption-key-file", newKek, "--retired-encryption-key-file", oldKek]);
        var etcdctl = rotated.Etcdctl(_pki);

        using var stopWriting = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            // etcdctl keeps writing, overwriting old keys and creating new ones, until migration is done.
            for (var n = 0; !stopWriting.IsCancellationRequested; n++)
            {
                var key = n % 2 == 0 ? $"/rot/old/{n % 150:D3}" : $"/rot/new/{n}";
                (await etcdctl.RunAsync("put", key, $"during-{n}")).EnsureSuccess();
                expected[key] = $"during-{n}";
            }
        });

        var migrate = await ExternalCommand.RunAsync(
            "dotnet",
            [ShieldBinary, "migrate", "--upstream-endpoints", etcd.ClientUrl, "--encryption-key-file", newKek, "--retired-encryption-key-file", oldKek, "--legacy-plaintext-prefix", "/rot/legacy", "--batch-size", "40"],
            timeout: TimeSpan.FromMinutes(2));
        await stopWriting.CancelAsync();
        await writer;

        Assert.True(migrate.Succeeded, migrate.ToString());
        Assert.Contains($"current key-encryption key {newKekId}", migrate.StdOut, StringComparison.Ordinal);
        Assert.Contains("failed (cannot decrypt, left as they are): 0", migrate.StdOut, StringComparison.Ordinal);

        // Every stored value is now an envelope under the new KEK.
        using var etcdChannel = GrpcChannels.ToEtcd(etcd);
        var stored = await new KV.KVClient(etcdChannel).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/rot/"), RangeEnd = ByteString.CopyFromUtf8("/rot0") });
        Assert.Equal(expected.Count, stored.Kvs.Count);
        foreach (var kv in stored.Kvs)
        {
            Assert.True(ValueEnvelope.HasEnvelopePrefix(kv.Value.Span), $"{kv.Key.ToStringUtf8()} is not encrypted");
            Assert.Equal(newKekId, ValueEnvelope.Parse(kv.Value.Span).GetKekIdString());
        }

        // The old KEK can now be destroyed: a proxy without it reads every last write.
        await using var after = await ShieldServer.StartAsync(_pki, etcd.ClientUrl, flags: ["--encryption-key-file", newKek]);
        using var afterChannel = ProxyChannel(after);
        var read = await new KV.KVClient(afterChannel).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/rot/"), RangeEnd = ByteString.CopyFromUtf8("/rot0") });
        var actual = read.Kvs.ToDictionary(kv => kv.Key.ToStringUtf8(), kv => kv.Value.ToStringUtf8());
        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), actual.OrderBy(p => p.Key, StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_dry_run_reports_and_writes_nothing()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        var kek = ShieldServer.WriteDevelopmentKey(_keys);
        var direct = new Etcdctl(etcd.ClientUrl);
        (await direct.RunAsync("put", "/dry/a", "plain")).EnsureSuccess();

        var migrate = await ExternalCommand.RunAsync("dotnet", [ShieldBinary, "migrate", "--upstream-endpoints", etcd.ClientUrl, "--encryption-key-file", kek, "--legacy-plaintext-prefix", "/dry/", "--dry-run"]);

        Assert.True(migrate.Succeeded, migrate.ToString());
        Assert.Contains("would encrypt 1 plaintext values", migrate.StdOut, StringComparison.Ordinal);
        Assert.Equal(["/dry/a", "plain"], (await direct.RunAsync("get", "/dry/a")).EnsureSuccess().StdOutLines);
    }

    [Fact]
    public async Task A_value_that_cannot_be_decrypted_is_reported_and_left_alone()
    {
        await using var etcd = await EtcdProcess.StartAsync();
        var kek = ShieldServer.WriteDevelopmentKey(_keys);
        var stranger = ShieldServer.WriteDevelopmentKey(_keys);
        await using (var other = await ShieldServer.StartAsync(_pki, etcd.ClientUrl, flags: ["--encryption-key-file", stranger]))
        {
            (await other.Etcdctl(_pki).RunAsync("put", "/bad/unknown-kek", "secret")).EnsureSuccess();
        }

        var migrate = await ExternalCommand.RunAsync("dotnet", [ShieldBinary, "migrate", "--upstream-endpoints", etcd.ClientUrl, "--encryption-key-file", kek]);

        Assert.Equal(1, migrate.ExitCode);
        Assert.Contains("/bad/unknown-kek", migrate.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", migrate.StdOut + migrate.StdErr, StringComparison.Ordinal);
    }

    private static string ShieldBinary => Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll");

    private static string KekIdOf(string keyFile)
    {
        using var kek = FileKeyEncryptionKey.Load(keyFile, NullLogger.Instance);
        return kek.Id;
    }

    private GrpcChannel ProxyChannel(ShieldServer server) => GrpcChannels.ToProxy(server, _pki);
}
