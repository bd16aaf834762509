using EtcdShield.Encryption;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Keys;
using EtcdShield.Hosting;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A storage operator (raw write access to etcd, no key) plants values under an encrypted prefix and waits for the
/// next routine `etcdshield migrate` to seal them, so that the proxy serves them as genuine from then on. Migrate
/// runs as the operator runs it (its own process, its own PKCS#11 session on a SoftHSM2 token): outside a migration
/// window it declared itself it refuses plaintext, never re-seals what does not authenticate (a moved envelope, one
/// wrapped by a key of the token it does not trust), and exits 1 naming every such key, which the proxy keeps refusing.
/// </summary>
[Collection(SoftHsmTests.Name)]
public sealed class MigrateLaunderingTests(SoftHsmInProcess hsm, TestPki pki) : IClassFixture<TestPki>
{
    [Fact]
    public async Task Routine_migrate_refuses_planted_plaintext_and_moved_envelopes_and_leaves_them_refused()
    {
        var token = hsm.CreateToken();
        Assert.Equal(0, await KeysAsync("create", token.Flags("kek")));
        token.GenerateAesKey("app-key", 32, sensitive: true, wrap: true, unwrap: true);
        await using var etcd = await EtcdProcess.StartAsync();
        await using var proxy = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: token.Flags("kek"));
        using var proxyChannel = GrpcChannels.ToProxy(proxy, pki);
        var viaProxy = new KV.KVClient(proxyChannel);
        using var etcdChannel = GrpcChannels.ToEtcd(etcd);
        var direct = new KV.KVClient(etcdChannel);

        await viaProxy.PutAsync(new PutRequest { Key = Bytes("/app/genuine"), Value = Bytes("real-secret") });
        var genuine = (await direct.RangeAsync(new RangeRequest { Key = Bytes("/app/genuine") })).Kvs[0].Value;

        // The attacker's writes, straight into etcd: a plaintext of their choosing, a genuine envelope copied to
        // another key (a valid envelope, sealed for a key it does not belong to), and a value sealed under a data key
        // of their own, wrapped by another key of the token they can use.
        await direct.PutAsync(new PutRequest { Key = Bytes("/app/planted"), Value = Bytes("attacker-chosen") });
        await direct.PutAsync(new PutRequest { Key = Bytes("/app/moved"), Value = genuine });
        var foreign = await HsmForgery.SealAsync(token, "app-key", "/app/foreign-kek", "attacker-sealed");
        await direct.PutAsync(new PutRequest { Key = Bytes("/app/foreign-kek"), Value = foreign });
        var proxyRefusesPlanted = await Assert.ThrowsAsync<RpcException>(() => viaProxy.RangeAsync(new RangeRequest { Key = Bytes("/app/planted") }).ResponseAsync);
        StoredValue.AssertDataLoss(proxyRefusesPlanted, "/app/planted", "attacker-chosen");

        var migrate = await MigrateAsync(etcd, token);

        Assert.Equal("attacker-chosen", (await direct.RangeAsync(new RangeRequest { Key = Bytes("/app/planted") })).Kvs[0].Value.ToStringUtf8());
        Assert.Equal(genuine, (await direct.RangeAsync(new RangeRequest { Key = Bytes("/app/moved") })).Kvs[0].Value);
        Assert.Equal(foreign, (await direct.RangeAsync(new RangeRequest { Key = Bytes("/app/foreign-kek") })).Kvs[0].Value);
        Assert.Equal(1, migrate.ExitCode);
        Assert.Contains("\"/app/planted\"", migrate.StdOut, StringComparison.Ordinal);
        Assert.Contains("\"/app/moved\"", migrate.StdOut, StringComparison.Ordinal);
        Assert.Contains("\"/app/foreign-kek\"", migrate.StdOut, StringComparison.Ordinal);
        Assert.Contains("failed (cannot decrypt, left as they are): 2", migrate.StdOut, StringComparison.Ordinal);
        Assert.Contains("refused (plaintext outside a --legacy-plaintext-prefix window, left as they are): 1", migrate.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("attacker-chosen", migrate.StdOut + migrate.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("real-secret", migrate.StdOut + migrate.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("attacker-sealed", migrate.StdOut + migrate.StdErr, StringComparison.Ordinal);

        var stillRefused = await Assert.ThrowsAsync<RpcException>(() => viaProxy.RangeAsync(new RangeRequest { Key = Bytes("/app/planted") }).ResponseAsync);
        StoredValue.AssertDataLoss(stillRefused, "/app/planted", "attacker-chosen");
        var movedRefused = await Assert.ThrowsAsync<RpcException>(() => viaProxy.RangeAsync(new RangeRequest { Key = Bytes("/app/moved") }).ResponseAsync);
        StoredValue.AssertDataLoss(movedRefused, "/app/moved", "real-secret");
        var foreignRefused = await Assert.ThrowsAsync<RpcException>(() => viaProxy.RangeAsync(new RangeRequest { Key = Bytes("/app/foreign-kek") }).ResponseAsync);
        StoredValue.AssertDataLoss(foreignRefused, "/app/foreign-kek", "attacker-sealed");
        Assert.Equal("real-secret", (await viaProxy.RangeAsync(new RangeRequest { Key = Bytes("/app/genuine") })).Kvs[0].Value.ToStringUtf8());
    }

    [Fact]
    public async Task Migrate_seals_plaintext_only_inside_the_window_it_was_given()
    {
        var token = hsm.CreateToken();
        Assert.Equal(0, await KeysAsync("create", token.Flags("kek")));
        await using var etcd = await EtcdProcess.StartAsync();
        using var etcdChannel = GrpcChannels.ToEtcd(etcd);
        var direct = new KV.KVClient(etcdChannel);
        await direct.PutAsync(new PutRequest { Key = Bytes("/legacy/config"), Value = Bytes("from-before-the-proxy") });

        var migrate = await MigrateAsync(etcd, token, "--legacy-plaintext-prefix", "/legacy/");

        Assert.True(migrate.Succeeded, migrate.ToString());
        Assert.Contains("encrypted 1 plaintext values", migrate.StdOut, StringComparison.Ordinal);
        var stored = (await direct.RangeAsync(new RangeRequest { Key = Bytes("/legacy/config") })).Kvs[0].Value;
        Assert.Equal("pkcs11:kek", ValueEnvelope.Parse(stored.Span).GetKekIdString());
        await using var proxy = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: token.Flags("kek"));
        using var proxyChannel = GrpcChannels.ToProxy(proxy, pki);
        var read = await new KV.KVClient(proxyChannel).RangeAsync(new RangeRequest { Key = Bytes("/legacy/config") });
        Assert.Equal("from-before-the-proxy", read.Kvs[0].Value.ToStringUtf8());
    }

    private Task<CommandResult> MigrateAsync(EtcdProcess etcd, InProcessToken token, params string[] extra) =>
        ExternalCommand.RunAsync(
            "dotnet",
            [Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll"), "migrate", "--upstream-endpoints", etcd.ClientUrl, .. token.Flags("kek"), .. extra],
            environment: hsm.Environment,
            timeout: TimeSpan.FromMinutes(2));

    private static Task<int> KeysAsync(string command, IReadOnlyList<string> flags) =>
        KeysCommand.RunAsync([command, .. flags], TextWriter.Null, TextWriter.Null, NullLoggerFactory.Instance);

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);
}
