using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Grpc.Core;
using static EtcdShield.EndToEnd.Encryption.StoredValue;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>
/// Refused values are counted by reason on the proxy's Prometheus endpoint, and the endpoint names neither keys
/// nor values.
/// </summary>
[Collection(RunsAlone.Name)]
public sealed class MetricsEndpointTests(EncryptingProxy etcd) : IClassFixture<EncryptingProxy>
{
    [Fact]
    public async Task Decrypt_failures_are_exported_by_reason_without_keys_or_values()
    {
        var prefix = ShieldedEtcd.NewPrefix("metrics-endpoint");
        await etcd.PlantAsync(prefix + "plaintext", Utf8("exported-plaintext-value"));
        await etcd.PutAsync(prefix + "tampered", "exported-sealed-value");
        var envelope = (await etcd.StoredAsync(prefix + "tampered"))!.ToByteArray();
        envelope[^1] ^= 0x01;
        await etcd.PlantAsync(prefix + "tampered", Google.Protobuf.ByteString.CopyFrom(envelope));

        await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(prefix + "plaintext"));
        await Assert.ThrowsAsync<RpcException>(() => etcd.GetAsync(prefix + "tampered"));
        await Assert.ThrowsAsync<RpcException>(() => etcd.ProxyKv.RangeAsync(new RangeRequest { Key = Utf8(prefix + "tampered") }).ResponseAsync);

        var notEncrypted = await ProxyMetrics.WaitForAsync(etcd.Shield, ProxyMetrics.DecryptFailures, "reason=\"not_encrypted\"", 1);
        var authentication = await ProxyMetrics.WaitForAsync(etcd.Shield, ProxyMetrics.DecryptFailures, "reason=\"authentication_failed\"", 2);
        var text = await ProxyMetrics.ScrapeAsync(etcd.Shield);

        Assert.Equal(1, notEncrypted);
        Assert.Equal(2, authentication);
        Assert.DoesNotContain(prefix, text, StringComparison.Ordinal);
        Assert.DoesNotContain("exported-", text, StringComparison.Ordinal);
    }
}
