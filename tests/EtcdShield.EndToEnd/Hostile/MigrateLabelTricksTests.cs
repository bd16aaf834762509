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
/// A storage operator who can use keys of the proxy's token other than its KEK labels them to look like the KEK
/// family (a non-canonical version number, a look-alike letter, another case, a trailing space), seals values under
/// them, and writes them straight into etcd, one of them inside the migration window, waiting for the next routine
/// migrate. Another names a version of the family the token does not hold, wrapped by a key of that label in a token
/// of the attacker's own. None of them may be re-sealed; migrate lists each, exits 1, and the proxy refuses them.
/// </summary>
[Collection(SoftHsmTests.Name)]
public sealed class MigrateLabelTricksTests(SoftHsmInProcess hsm, TestPki pki) : IClassFixture<TestPki>
{
    private static readonly string[] LookAlikes = ["kek#0", "kek#01", "kek#-1", "kek#+2", "KEK", "k\u0435k", "kek ", "kek#2 "];

    [Fact]
    public async Task Look_alike_labels_and_an_absent_version_are_neither_resealed_by_migrate_nor_served()
    {
        var token = hsm.CreateToken();
        Assert.Equal(0, await KeysCommand.RunAsync(["create", .. token.Flags("kek")], TextWriter.Null, TextWriter.Null, NullLoggerFactory.Instance));
        foreach (var label in LookAlikes)
        {
            token.GenerateAesKey(label, 32, sensitive: true, wrap: true, unwrap: true);
        }

        var elsewhere = hsm.CreateToken();
        elsewhere.GenerateAesKey("kek#2", 32, sensitive: true, wrap: true, unwrap: true);
        await using var etcd = await EtcdProcess.StartAsync();
        using var etcdChannel = GrpcChannels.ToEtcd(etcd);
        var direct = new KV.KVClient(etcdChannel);
        var planted = new Dictionary<string, ByteString>(StringComparer.Ordinal);
        for (var i = 0; i < LookAlikes.Length; i++)
        {
            var key = i == 0 ? "/app/legacy/forged" : $"/app/forged-{i}";
            planted[key] = await HsmForgery.SealAsync(token, LookAlikes[i], key, "attacker-sealed");
        }

        planted["/app/absent-version"] = await HsmForgery.SealAsync(elsewhere, "kek#2", "/app/absent-version", "attacker-sealed");
        foreach (var (key, value) in planted)
        {
            await direct.PutAsync(new PutRequest { Key = Bytes(key), Value = value });
        }

        var migrate = await ExternalCommand.RunAsync(
            "dotnet",
            [Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll"), "migrate", "--upstream-endpoints", etcd.ClientUrl, .. token.Flags("kek"), "--legacy-plaintext-prefix", "/app/legacy/"],
            environment: hsm.Environment,
            timeout: TimeSpan.FromMinutes(2));

        Assert.Equal(1, migrate.ExitCode);
        Assert.Contains($"failed (cannot decrypt, left as they are): {planted.Count}", migrate.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("attacker-sealed", migrate.StdOut + migrate.StdErr, StringComparison.Ordinal);
        await using var proxy = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: token.Flags("kek"));
        proxy.ErrorsExpected = true;
        using var proxyChannel = GrpcChannels.ToProxy(proxy, pki);
        var viaProxy = new KV.KVClient(proxyChannel);
        foreach (var (key, value) in planted)
        {
            Assert.Equal(value, (await direct.RangeAsync(new RangeRequest { Key = Bytes(key) })).Kvs[0].Value);
            var refusal = await Assert.ThrowsAsync<RpcException>(() => viaProxy.RangeAsync(new RangeRequest { Key = Bytes(key) }).ResponseAsync);
            StoredValue.AssertDataLoss(refusal, key, "attacker-sealed");
            Assert.Contains("unknown key-encryption key", refusal.Status.Detail, StringComparison.Ordinal);
        }
    }

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);
}
