using EtcdShield.Encryption;
using EtcdShield.EndToEnd.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Keys.KmsV2;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.KmsV2;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>
/// A storage operator copies a genuine envelope to another key and changes only what they can change without the
/// KEK: the wrapped data key re-encoded with an extra protobuf field, the envelope's KEK id pointed at another
/// plugin key while the wrapped blob still names the real one, or an annotation added that the plugin ignores. Each
/// still unwraps to the real data key at the KMS plugin. Read first, after a restart emptied the data-key cache, the forgery must be DATA_LOSS on its own, and the
/// genuine value under the same data key must keep reading: a forgery never decides what genuine values decrypt to.
/// </summary>
public sealed class KmsCachePoisoningTests : IAsyncLifetime, IDisposable
{
    private readonly TestPki _pki = new();
    private TestKmsPlugin _kms = null!;
    private readonly string _prefix = SharedEtcd.NewPrefix("kms-poisoning");
    private EtcdProcess _etcd = null!;

    public async Task InitializeAsync()
    {
        _kms = await TestKmsPlugin.StartAsync();
        _etcd = await SharedEtcd.GetAsync();
    }

    public async Task DisposeAsync() => await _kms.DisposeAsync();

    public void Dispose() => _pki.Dispose();

    [Theory]
    [InlineData("unknown-field")]
    [InlineData("key-id")]
    [InlineData("extra-annotation")]
    public async Task A_forged_wrapping_read_first_fails_alone_and_genuine_values_keep_reading(string variant)
    {
        await using (var writer = await StartProxyAsync())
        {
            using var channel = GrpcChannels.ToProxy(writer, _pki);
            await new KV.KVClient(channel).PutAsync(new PutRequest { Key = Bytes(_prefix + "genuine"), Value = Bytes("real-secret") });
        }

        using var etcdChannel = GrpcChannels.ToEtcd(_etcd);
        var direct = new KV.KVClient(etcdChannel);
        var genuine = (await direct.RangeAsync(new RangeRequest { Key = Bytes(_prefix + "genuine") })).Kvs[0].Value.ToByteArray();
        var forged = variant switch
        {
            "unknown-field" => WithUnknownField(genuine),
            "key-id" => WithKekId(genuine, KmsKeyEncryptionKey.IdFor("projects/test/keys/kek/versions/2")),
            _ => WithExtraAnnotation(genuine),
        };
        await direct.PutAsync(new PutRequest { Key = Bytes(_prefix + "forged"), Value = ByteString.CopyFrom(forged) });

        await using var reader = await StartProxyAsync();
        using var readerChannel = GrpcChannels.ToProxy(reader, _pki);
        var kv = new KV.KVClient(readerChannel);
        for (var round = 0; round < 2; round++)
        {
            var refusal = await Assert.ThrowsAsync<RpcException>(() => kv.RangeAsync(new RangeRequest { Key = Bytes(_prefix + "forged") }).ResponseAsync);
            StoredValue.AssertDataLoss(refusal, _prefix + "forged", "real-secret");
            Assert.Equal("real-secret", (await kv.RangeAsync(new RangeRequest { Key = Bytes(_prefix + "genuine") })).Kvs[0].Value.ToStringUtf8());
        }
    }

    /// <summary>The same EncryptResponse with field 15 (unknown to KMS v2) appended: protobuf parsers skip it.</summary>
    private static byte[] WithUnknownField(byte[] envelope)
    {
        var header = ValueEnvelope.Parse(envelope);
        byte[] wrapped = [.. header.WrappedKey, 0x78, 0x01];
        Assert.Equal(EncryptResponse.Parser.ParseFrom(header.WrappedKey).Ciphertext, EncryptResponse.Parser.ParseFrom(wrapped).Ciphertext);
        return Rebuild(envelope, header.GetKekIdString(), wrapped);
    }

    /// <summary>
    /// A canonical encoding, naming the right key, that the plugin still decrypts (it ignores annotations it did not
    /// set): only keying the cache by the whole wrapping keeps this one from deciding what genuine values get.
    /// </summary>
    private static byte[] WithExtraAnnotation(byte[] envelope)
    {
        var header = ValueEnvelope.Parse(envelope);
        var response = EncryptResponse.Parser.ParseFrom(header.WrappedKey);
        response.Annotations["attacker.example.com/x"] = ByteString.CopyFromUtf8("1");
        return Rebuild(envelope, header.GetKekIdString(), response.ToByteArray());
    }

    private static byte[] WithKekId(byte[] envelope, string kekId)
    {
        var header = ValueEnvelope.Parse(envelope);
        return Rebuild(envelope, kekId, header.WrappedKey.ToArray());
    }

    private static byte[] Rebuild(byte[] envelope, string kekId, byte[] wrapped)
    {
        var header = ValueEnvelope.Parse(envelope);
        var prefix = ValueEnvelope.CreateHeaderPrefix(header.DataKeyId, kekId, wrapped, out _);
        return [.. prefix, .. header.Nonce, .. envelope.AsSpan(header.Length)];
    }

    private Task<ShieldServer> StartProxyAsync() =>
        ShieldServer.StartAsync(_pki, _etcd.ClientUrl, flags: ["--kms-plugin-endpoint", _kms.Endpoint]);

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);
}
