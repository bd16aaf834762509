using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Keys;
using EtcdShield.Hosting;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A storage operator who can also use some other unwrap-capable key in the proxy's HSM token (an application's
/// key, a test key left behind) forges a value: a data key of their own, wrapped by that other key through their own
/// PKCS#11 session, sealed into an envelope whose KEK id names it, written straight into etcd. The proxy only lets
/// its own KEK family and labels the operator retired unwrap, so the forgery is DATA_LOSS, and it warns at startup
/// that the token holds such a key.
/// </summary>
[Collection(SoftHsmTests.Name)]
public sealed class ForeignKekTests(SoftHsmInProcess hsm, TestPki pki) : IClassFixture<TestPki>
{
    [Fact]
    public async Task An_envelope_wrapped_by_another_key_in_the_token_is_unknown_and_the_key_is_warned_about()
    {
        var token = hsm.CreateToken();
        Assert.Equal(0, await KeysAsync("create", token.Flags("kek")));
        token.GenerateAesKey("app-key", 32, sensitive: true, wrap: true, unwrap: true);
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("foreign-kek");
        await using var proxy = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: token.Flags("kek"));
        using var proxyChannel = GrpcChannels.ToProxy(proxy, pki);
        var viaProxy = new KV.KVClient(proxyChannel);

        await PlantForgeryAsync(token, etcd, p + "forged", "app-key", "attacker-value");

        var refusal = await Assert.ThrowsAsync<RpcException>(() => viaProxy.RangeAsync(new RangeRequest { Key = Bytes(p + "forged") }).ResponseAsync);
        StoredValue.AssertDataLoss(refusal, p + "forged", "attacker-value");
        Assert.Contains("unknown key-encryption key \"pkcs11:app-key\"", refusal.Status.Detail, StringComparison.Ordinal);

        var warning = Assert.Single(proxy.Logs.Entries, e => e.Is("EtcdShield.Keys.Pkcs11", "ForeignUnwrapKey"));
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("\"app-key\"", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_label_the_operator_retired_still_unwraps()
    {
        var token = hsm.CreateToken();
        Assert.Equal(0, await KeysAsync("create", token.Flags("kek")));
        token.GenerateAesKey("old-kek", 32, sensitive: true, wrap: true, unwrap: true);
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("foreign-kek");
        await PlantForgeryAsync(token, etcd, p + "under-old-kek", "old-kek", "written-before-the-rename");
        await using var proxy = await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: [.. token.Flags("kek"), "--pkcs11-retired-key-label", "old-kek"]);
        using var proxyChannel = GrpcChannels.ToProxy(proxy, pki);

        var read = await new KV.KVClient(proxyChannel).RangeAsync(new RangeRequest { Key = Bytes(p + "under-old-kek") });

        Assert.Equal("written-before-the-rename", read.Kvs[0].Value.ToStringUtf8());
        Assert.DoesNotContain(proxy.Logs.Entries, e => e.Is("EtcdShield.Keys.Pkcs11", "ForeignUnwrapKey"));
    }

    /// <summary>A forgery under <paramref name="label"/> planted straight into etcd.</summary>
    private static async Task PlantForgeryAsync(InProcessToken token, EtcdProcess etcd, string key, string label, string value)
    {
        var forged = await HsmForgery.SealAsync(token, label, key, value);
        using var channel = GrpcChannels.ToEtcd(etcd);
        await new KV.KVClient(channel).PutAsync(new PutRequest { Key = Bytes(key), Value = forged });
    }

    private static Task<int> KeysAsync(string command, IReadOnlyList<string> flags) =>
        KeysCommand.RunAsync([command, .. flags], TextWriter.Null, TextWriter.Null, NullLoggerFactory.Instance);

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);
}
