using EtcdShield.Encryption;
using System.Text;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.EndToEnd.Keys;
using EtcdShield.Hosting;
using EtcdShield.Keys.Pkcs11;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A storage operator plants one value whose wrapped data key was altered, under a key clients read all the time.
/// Every read of it would otherwise be an unwrap call to the HSM (and, with SoftHSM2's answer to a failed integrity
/// check, two probes more), as often as any reader cares to ask. The HSM's verdict on a wrapping does not change,
/// so the proxy remembers it for a while: HSM calls per forged value are bounded, and genuine values are untouched.
/// </summary>
[Collection(SoftHsmTests.Name)]
public sealed class ForgedWrappingHsmCallsTests(SoftHsmInProcess hsm, TestPki pki) : IClassFixture<TestPki>
{
    private const string KekUnwraps = "etcdshield.keys.kek_unwraps";

    [Fact]
    public async Task Reading_a_forged_wrapping_again_and_again_costs_one_hsm_unwrap()
    {
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("forged-wrapping");
        await using var proxy = await ProxyWithNewKekAsync(etcd);
        using var proxyChannel = GrpcChannels.ToProxy(proxy, pki);
        var viaProxy = new KV.KVClient(proxyChannel);
        using var etcdChannel = GrpcChannels.ToEtcd(etcd);
        var raw = new KV.KVClient(etcdChannel);
        await viaProxy.PutAsync(new PutRequest { Key = Bytes(p + "genuine"), Value = Bytes("genuine-value") });
        var stored = (await raw.RangeAsync(new RangeRequest { Key = Bytes(p + "genuine") })).Kvs[0].Value.ToByteArray();
        var forged = stored.ToArray();
        var wrappedAt = forged.AsSpan().IndexOf(ValueEnvelope.Parse(stored).WrappedKey);
        forged[wrappedAt + ValueEnvelope.Parse(stored).WrappedKey.Length - 1] ^= 1;
        await raw.PutAsync(new PutRequest { Key = Bytes(p + "forged"), Value = ByteString.CopyFrom(forged) });
        using var meters = new ProxyMeters(proxy, EtcdShield.Keys.KeyMetrics.MeterName, KekUnwraps);
        proxy.ErrorsExpected = true;

        for (var i = 0; i < 20; i++)
        {
            var refusal = await Assert.ThrowsAsync<RpcException>(() => viaProxy.RangeAsync(new RangeRequest { Key = Bytes(p + "forged") }).ResponseAsync);
            Assert.Equal(StatusCode.DataLoss, refusal.StatusCode);
        }

        Assert.Equal(1, meters.Total(KekUnwraps));
        var genuine = await viaProxy.RangeAsync(new RangeRequest { Key = Bytes(p + "genuine") });
        Assert.Equal("genuine-value", genuine.Kvs[0].Value.ToStringUtf8());
    }

    [Fact]
    public async Task Reading_a_value_that_names_an_absent_version_of_the_kek_again_and_again_costs_one_hsm_lookup()
    {
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("forged-wrapping");
        await using var proxy = await ProxyWithNewKekAsync(etcd);
        using var proxyChannel = GrpcChannels.ToProxy(proxy, pki);
        var viaProxy = new KV.KVClient(proxyChannel);

        // "kek#2" is a version of the family, so the proxy looks for it in its token, where there is none.
        var elsewhere = hsm.CreateToken();
        elsewhere.GenerateAesKey("kek#2", 32, sensitive: true, wrap: true, unwrap: true);
        using (var attacker = Pkcs11KeyStore.Open(elsewhere.Settings("kek#2"), readWrite: false, NullLogger.Instance))
        using (var dataKey = await EncryptionKey.CreateAsync(new Pkcs11KeyEncryptionKey(attacker, "kek#2"), 16, TimeProvider.System, CancellationToken.None))
        {
            var forged = ValueEnvelope.Seal(dataKey, Encoding.UTF8.GetBytes(p + "next-version"), "attacker-value"u8);
            using var etcdChannel = GrpcChannels.ToEtcd(etcd);
            await new KV.KVClient(etcdChannel).PutAsync(new PutRequest { Key = Bytes(p + "next-version"), Value = ByteString.CopyFrom(forged) });
        }

        using var meters = new ProxyMeters(proxy, EtcdShield.Keys.KeyMetrics.MeterName, KekUnwraps);
        proxy.ErrorsExpected = true;

        for (var i = 0; i < 20; i++)
        {
            var refusal = await Assert.ThrowsAsync<RpcException>(() => viaProxy.RangeAsync(new RangeRequest { Key = Bytes(p + "next-version") }).ResponseAsync);
            Assert.Equal(StatusCode.DataLoss, refusal.StatusCode);
            Assert.Contains("unknown key-encryption key \"pkcs11:kek#2\"", refusal.Status.Detail, StringComparison.Ordinal);
        }

        Assert.Equal(1, meters.Total(KekUnwraps));
    }

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);

    /// <summary>A proxy over <paramref name="etcd"/> whose KEK "kek" was just created in a token of its own.</summary>
    private async Task<ShieldServer> ProxyWithNewKekAsync(EtcdProcess etcd)
    {
        var token = hsm.CreateToken();
        Assert.Equal(0, await KeysCommand.RunAsync(["create", .. token.Flags("kek")], TextWriter.Null, TextWriter.Null, NullLoggerFactory.Instance));
        return await ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: token.Flags("kek"));
    }
}
