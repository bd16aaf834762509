using System.Collections.Concurrent;
using EtcdShield.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Hosting;
using EtcdShield.Keys;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.EndToEnd.Keys;

/// <summary>
/// The operator's full cycle with the KEK in SoftHSM2: `keys rotate` while etcdctl keeps writing through the
/// proxy, the proxy moving new writes to the new KEK version, `etcdshield migrate` (its own process, its own
/// PKCS#11 session) re-encrypting the rest, and `keys status` showing the old version protects nothing.
/// </summary>
[Collection(SoftHsmTests.Name)]
public sealed class Pkcs11RotateThenMigrateTests(SoftHsmInProcess hsm, TestPki pki) : IClassFixture<TestPki>
{
    [Fact]
    public async Task Rotate_then_migrate_under_concurrent_etcdctl_writes_loses_nothing_and_leaves_nothing_under_the_old_kek()
    {
        var token = hsm.CreateToken();
        Assert.Equal(0, await KeysAsync("create", token.Flags("kek")));
        await using var etcd = await EtcdProcess.StartAsync();
        await using var proxy = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: token.Flags("kek"));
        var etcdctl = proxy.Etcdctl(pki);

        var expected = new ConcurrentDictionary<string, string>();
        using (var channel = GrpcChannels.ToProxy(proxy, pki))
        {
            var kv = new KV.KVClient(channel);
            for (var i = 0; i < 100; i++)
            {
                await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8($"/hsm/{i:D3}"), Value = ByteString.CopyFromUtf8($"v1-{i}") });
                expected[$"/hsm/{i:D3}"] = $"v1-{i}";
            }
        }

        var before = (await etcdctl.RunAsync("get", "/hsm/", "--prefix")).EnsureSuccess().StdOut;

        using var stopWriting = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (var n = 0; !stopWriting.IsCancellationRequested; n++)
            {
                var key = $"/hsm/{n % 100:D3}";
                (await etcdctl.RunAsync("put", key, $"during-{n}")).EnsureSuccess();
                expected[key] = $"during-{n}";
            }
        });

        Assert.Equal(0, await KeysAsync("rotate", token.Flags("kek")));
        Assert.True(await proxy.Services.GetRequiredService<KeyRingRefresher>().CheckNowAsync(CancellationToken.None));
        var migrate = await ExternalCommand.RunAsync(
            "dotnet",
            [Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll"), "migrate", "--upstream-endpoints", etcd.ClientUrl, .. token.Flags("kek")],
            environment: hsm.Environment,
            timeout: TimeSpan.FromMinutes(2));
        await stopWriting.CancelAsync();
        await writer;

        Assert.True(migrate.Succeeded, migrate.ToString());
        Assert.Contains("current key-encryption key pkcs11:kek#2", migrate.StdOut, StringComparison.Ordinal);

        // etcd holds nothing under the retired version; etcdctl reads every last write.
        using var direct = GrpcChannels.ToEtcd(etcd);
        var stored = await new KV.KVClient(direct).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/hsm/"), RangeEnd = ByteString.CopyFromUtf8("/hsm0") });
        Assert.All(stored.Kvs, kv => Assert.Equal("pkcs11:kek#2", ValueEnvelope.Parse(kv.Value.Span).GetKekIdString()));
        var after = (await etcdctl.RunAsync("get", "/hsm/", "--prefix")).EnsureSuccess().StdOutLines;
        var read = after.Chunk(2).ToDictionary(pair => pair[0], pair => pair[1]);
        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), read.OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Contains("/hsm/000", before, StringComparison.Ordinal);

        using var status = new StringWriter();
        Assert.Equal(0, await KeysCommand.RunAsync(["status", .. token.Flags("kek"), "--upstream-endpoints", etcd.ClientUrl], status, TextWriter.Null, NullLoggerFactory.Instance));
        Assert.Contains("no values: can be deleted from the token", status.ToString(), StringComparison.Ordinal);
    }

    private static Task<int> KeysAsync(string command, IReadOnlyList<string> flags) =>
        KeysCommand.RunAsync([command, .. flags], TextWriter.Null, TextWriter.Null, NullLoggerFactory.Instance);
}
