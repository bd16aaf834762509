using EtcdShield.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Keys;
using EtcdShield.Keys.KmsV2;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.EndToEnd.Keys;

/// <summary>
/// The KEK held by a Kubernetes KMS v2 plugin on a unix socket: values at rest are envelopes naming the plugin's
/// key, clients read plaintext, the plugin's key rotation moves new writes at once while old values still read,
/// migrate moves the rest, and a plugin outage fails writes that need a new data key with UNAVAILABLE.
/// </summary>
public sealed class KmsPluginProviderTests : IAsyncLifetime, IDisposable
{
    private readonly TestPki _pki = new();
    private TestKmsPlugin _kms = null!;
    private EtcdProcess _etcd = null!;
    private ShieldServer _shield = null!;

    public async Task InitializeAsync()
    {
        _kms = await TestKmsPlugin.StartAsync();
        _etcd = await EtcdProcess.StartAsync();
        _shield = await ShieldServer.StartAsync(_pki, _etcd.ClientUrl, flags: ["--kms-plugin-endpoint", _kms.Endpoint]);
    }

    public async Task DisposeAsync()
    {
        await _shield.DisposeAsync();
        await _etcd.DisposeAsync();
        await _kms.DisposeAsync();
    }

    public void Dispose() => _pki.Dispose();

    [Fact]
    public async Task Values_are_sealed_under_the_plugins_key_and_read_back_as_plaintext()
    {
        var etcdctl = _shield.Etcdctl(_pki);
        (await etcdctl.RunAsync("put", "/kms/a", "top-secret")).EnsureSuccess();

        Assert.Equal(["/kms/a", "top-secret"], (await etcdctl.RunAsync("get", "/kms/a")).EnsureSuccess().StdOutLines);
        var stored = await StoredAsync("/kms/a");
        Assert.Equal(KmsKeyEncryptionKey.IdFor(_kms.CurrentKeyId), ValueEnvelope.Parse(stored.Span).GetKekIdString());
        Assert.DoesNotContain("top-secret", stored.ToStringUtf8(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_rotation_at_the_plugin_moves_new_writes_and_migrate_moves_the_rest()
    {
        var etcdctl = _shield.Etcdctl(_pki);
        (await etcdctl.RunAsync("put", "/kms/rot/old", "before")).EnsureSuccess();
        var oldKek = KmsKeyEncryptionKey.IdFor(_kms.CurrentKeyId);

        var newKeyId = _kms.Rotate();
        Assert.True(await _shield.Services.GetRequiredService<KeyRingRefresher>().CheckNowAsync(CancellationToken.None));
        (await etcdctl.RunAsync("put", "/kms/rot/new", "after")).EnsureSuccess();

        Assert.Equal(KmsKeyEncryptionKey.IdFor(newKeyId), KekOf(await StoredAsync("/kms/rot/new")));
        Assert.Equal(oldKek, KekOf(await StoredAsync("/kms/rot/old")));
        Assert.Equal(["/kms/rot/old", "before"], (await etcdctl.RunAsync("get", "/kms/rot/old")).EnsureSuccess().StdOutLines);

        var migrate = await ExternalCommand.RunAsync(
            "dotnet", [Path.Combine(AppContext.BaseDirectory, "EtcdShield.dll"), "migrate", "--upstream-endpoints", _etcd.ClientUrl, "--kms-plugin-endpoint", _kms.Endpoint, "--prefix", "/kms/rot/"]);

        Assert.True(migrate.Succeeded, migrate.ToString());
        Assert.Equal(KmsKeyEncryptionKey.IdFor(newKeyId), KekOf(await StoredAsync("/kms/rot/old")));
        Assert.Equal(["/kms/rot/old", "before"], (await etcdctl.RunAsync("get", "/kms/rot/old")).EnsureSuccess().StdOutLines);
    }

    [Fact]
    public async Task A_plugin_outage_fails_writes_needing_a_new_data_key_with_unavailable_and_nothing_is_stored()
    {
        using var channel = GrpcChannels.ToProxy(_shield, _pki);
        var kv = new KV.KVClient(channel);
        await kv.PutAsync(new PutRequest { Key = Bytes("/kms/out/cached"), Value = Bytes("readable") });

        // The plugin goes down just as its key changes, so the next write needs a data key it cannot wrap.
        var plugin = _shield.Services.GetRequiredService<KmsPlugin>();
        var newKeyId = _kms.Rotate();
        _kms.Down = true;
        _shield.Services.GetRequiredService<DataKeyManager>().ReplaceKeyRing(plugin.RingFor(newKeyId));
        _shield.ErrorsExpected = true;
        try
        {
            // Reads of values whose data key is cached go on.
            var read = await kv.RangeAsync(new RangeRequest { Key = Bytes("/kms/out/cached") });
            Assert.Equal("readable", read.Kvs[0].Value.ToStringUtf8());

            // A write that needs a new data key cannot get one, and nothing is stored in its place.
            var e = await Assert.ThrowsAsync<RpcException>(() => kv.PutAsync(new PutRequest { Key = Bytes("/kms/out/new"), Value = Bytes("never-plain") }).ResponseAsync);
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Empty((await DirectKv().RangeAsync(new RangeRequest { Key = Bytes("/kms/out/new") })).Kvs);
        }
        finally
        {
            _kms.Down = false;
        }

        // And once the plugin is back, writes succeed again without a restart.
        await kv.PutAsync(new PutRequest { Key = Bytes("/kms/out/new"), Value = Bytes("after-recovery") });
        Assert.Equal("after-recovery", (await kv.RangeAsync(new RangeRequest { Key = Bytes("/kms/out/new") })).Kvs[0].Value.ToStringUtf8());
    }

    [Fact]
    public async Task The_plugin_is_called_once_per_data_key_not_per_request()
    {
        var etcdctl = _shield.Etcdctl(_pki);
        (await etcdctl.RunAsync("put", "/kms/calls/0", "x")).EnsureSuccess();
        var encrypts = _kms.EncryptCalls;
        var decrypts = _kms.DecryptCalls;

        for (var i = 1; i <= 5; i++)
        {
            (await etcdctl.RunAsync("put", $"/kms/calls/{i}", "x")).EnsureSuccess();
        }

        (await etcdctl.RunAsync("get", "/kms/calls/", "--prefix")).EnsureSuccess();
        Assert.Equal(encrypts, _kms.EncryptCalls);
        Assert.Equal(decrypts, _kms.DecryptCalls);
    }

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);

    private static string KekOf(ByteString stored) => ValueEnvelope.Parse(stored.Span).GetKekIdString();

    private KV.KVClient DirectKv() => new(GrpcChannels.ToEtcd(_etcd));

    private async Task<ByteString> StoredAsync(string key) =>
        (await DirectKv().RangeAsync(new RangeRequest { Key = Bytes(key) })).Kvs.Single().Value;
}
