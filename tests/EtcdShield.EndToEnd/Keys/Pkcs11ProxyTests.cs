using System.Text.Json;
using EtcdShield.Configuration;
using EtcdShield.Encryption;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Keys;
using EtcdShield.Keys.Pkcs11;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace EtcdShield.EndToEnd.Keys;

/// <summary>The proxy with its KEK in a real SoftHSM2 token, in front of a real etcd, driven by etcdctl.</summary>
[Collection(SoftHsmTests.Name)]
public sealed class Pkcs11ProxyTests(SoftHsmInProcess hsm, TestPki pki, ITestOutputHelper output) : IClassFixture<TestPki>
{
    [Fact]
    public async Task Clients_read_plaintext_while_etcd_holds_envelopes_under_the_hsm_kek()
    {
        var token = hsm.CreateToken();
        CreateKek(token, "kek");
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("pkcs11");
        await using var proxy = await StartProxyAsync(token, "kek", etcd);

        (await proxy.Etcdctl(pki).RunAsync("put", p + "greeting", "hello")).EnsureSuccess();
        var get = (await proxy.Etcdctl(pki).RunAsync("get", p + "greeting", "--print-value-only")).EnsureSuccess();
        var stored = await StoredEnvelopeAsync(etcd, p + "greeting");

        Assert.Equal(["hello"], get.StdOutLines);
        Assert.Equal("pkcs11:kek", stored.KekId);
        Assert.Equal(40, stored.WrappedKeyLength);
    }

    [Fact]
    public async Task The_proxy_refuses_to_start_when_the_kek_is_not_sensitive()
    {
        var token = hsm.CreateToken();
        token.GenerateAesKey("readable", 32, sensitive: false, wrap: true, unwrap: true);
        var etcd = await SharedEtcd.GetAsync();

        var refused = await Assert.ThrowsAsync<ConfigurationException>(() => StartProxyAsync(token, "readable", etcd));

        Assert.Contains("--pkcs11-key-label readable", refused.Message, StringComparison.Ordinal);
        Assert.Contains("CKA_SENSITIVE", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_proxies_on_one_token_read_each_others_writes()
    {
        var token = hsm.CreateToken();
        CreateKek(token, "kek");
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("pkcs11");
        await using var first = await StartProxyAsync(token, "kek", etcd);
        await using var second = await StartProxyAsync(token, "kek", etcd);

        (await first.Etcdctl(pki).RunAsync("put", p + "from-first", "1")).EnsureSuccess();
        (await second.Etcdctl(pki).RunAsync("put", p + "from-second", "2")).EnsureSuccess();
        var secondReads = (await second.Etcdctl(pki).RunAsync("get", p + "from-first", "--print-value-only")).EnsureSuccess();
        var firstReads = (await first.Etcdctl(pki).RunAsync("get", p + "from-second", "--print-value-only")).EnsureSuccess();

        Assert.Equal(["1"], secondReads.StdOutLines);
        Assert.Equal(["2"], firstReads.StdOutLines);

        // Each proxy made its own data key; both are wrapped by the one KEK in the token.
        var a = await StoredEnvelopeAsync(etcd, p + "from-first");
        var b = await StoredEnvelopeAsync(etcd, p + "from-second");
        Assert.NotEqual(a.DataKeyId, b.DataKeyId);
        Assert.Equal("pkcs11:kek", a.KekId);
        Assert.Equal("pkcs11:kek", b.KekId);
    }

    [Fact]
    public async Task Rotation_moves_new_writes_to_the_new_kek_while_old_values_still_read()
    {
        var token = hsm.CreateToken();
        CreateKek(token, "kek");
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("pkcs11");
        await using var proxy = await StartProxyAsync(token, "kek", etcd);
        await using var lagging = await StartProxyAsync(token, "kek", etcd);
        (await proxy.Etcdctl(pki).RunAsync("put", p + "before", "old")).EnsureSuccess();

        using (var store = Pkcs11KeyStore.Open(token.Settings("kek"), readWrite: true, NullLogger.Instance))
        {
            Assert.Equal(2, store.CreateVersion(rotate: true).Version);
        }

        var switched = await proxy.Services.GetRequiredService<KeyRingRefresher>().CheckNowAsync(default);
        var unchanged = await proxy.Services.GetRequiredService<KeyRingRefresher>().CheckNowAsync(default);
        (await proxy.Etcdctl(pki).RunAsync("put", p + "after", "new")).EnsureSuccess();

        Assert.True(switched);
        Assert.False(unchanged);
        Assert.Equal("pkcs11:kek", (await StoredEnvelopeAsync(etcd, p + "before")).KekId);
        Assert.Equal("pkcs11:kek#2", (await StoredEnvelopeAsync(etcd, p + "after")).KekId);
        Assert.Equal(["old"], (await proxy.Etcdctl(pki).RunAsync("get", p + "before", "--print-value-only")).EnsureSuccess().StdOutLines);
        Assert.Equal(["new"], (await proxy.Etcdctl(pki).RunAsync("get", p + "after", "--print-value-only")).EnsureSuccess().StdOutLines);

        // A proxy that has not looked at the token since still reads the new KEK's values (its ring resolves
        // any version of its family in the token), and keeps writing under the old KEK until its own check.
        Assert.Equal(["new"], (await lagging.Etcdctl(pki).RunAsync("get", p + "after", "--print-value-only")).EnsureSuccess().StdOutLines);
        (await lagging.Etcdctl(pki).RunAsync("put", p + "lagging", "x")).EnsureSuccess();
        Assert.Equal("pkcs11:kek", (await StoredEnvelopeAsync(etcd, p + "lagging")).KekId);
        Assert.True(await lagging.Services.GetRequiredService<KeyRingRefresher>().CheckNowAsync(default));
        (await lagging.Etcdctl(pki).RunAsync("put", p + "lagging", "y")).EnsureSuccess();
        Assert.Equal("pkcs11:kek#2", (await StoredEnvelopeAsync(etcd, p + "lagging")).KekId);
    }

    [Fact]
    public async Task While_the_token_is_gone_new_data_keys_fail_unavailable_cached_ones_keep_working_and_all_recovers()
    {
        var token = hsm.CreateToken();
        CreateKek(token, "kek");
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("pkcs11");
        await using var warm = await StartProxyAsync(token, "kek", etcd);
        await using var cold = await StartProxyAsync(token, "kek", etcd);
        warm.ErrorsExpected = true;
        cold.ErrorsExpected = true;
        (await warm.Etcdctl(pki).RunAsync("put", p + "k1", "v1")).EnsureSuccess();

        // SoftHSM2 keeps each token in a directory; moving it away is what a pulled device looks like to the
        // module: the slot stays, C_GetTokenInfo fails with CKR_GENERAL_ERROR, finds come back empty and the
        // cached key handle is refused (CKR_WRAPPING_KEY_HANDLE_INVALID). It only sees the token again after
        // C_Finalize/C_Initialize, which the provider does when it cannot find the token.
        var directory = token.Directory;
        // Out of the token directory altogether: SoftHSM loads every directory in it as a token when it initializes.
        var away = Path.Combine(Path.GetDirectoryName(hsm.TokenDirectory)!, Path.GetFileName(directory) + ".away");
        Directory.Move(directory, away);
        try
        {
            var warmRead = await warm.Etcdctl(pki).RunAsync("get", p + "k1", "--print-value-only");
            var warmWrite = await warm.Etcdctl(pki).RunAsync("put", p + "k2", "v2");
            var coldWrite = await cold.Etcdctl(pki, commandTimeout: TimeSpan.FromSeconds(10)).RunAsync("put", p + "k3", "v3");
            var coldRead = await cold.Etcdctl(pki, commandTimeout: TimeSpan.FromSeconds(10)).RunAsync("get", p + "k1", "--print-value-only");
            var rotate = await Assert.ThrowsAsync<KeyProviderUnavailableException>(
                () => warm.Services.GetRequiredService<DataKeyManager>().RotateAsync(default));
            output.WriteLine($"cold write during the outage: {coldWrite}");
            output.WriteLine($"rotation during the outage: {rotate.Message}");

            Assert.Equal(["v1"], warmRead.EnsureSuccess().StdOutLines); // its data key is cached
            warmWrite.EnsureSuccess(); // and it keeps sealing with the data key it has
            Assert.False(coldWrite.Succeeded, coldWrite.ToString());
            Assert.Contains("code = Unavailable", coldWrite.StdErr, StringComparison.Ordinal);
            Assert.False(coldRead.Succeeded, coldRead.ToString());
            Assert.Contains("code = Unavailable", coldRead.StdErr, StringComparison.Ordinal);
            Assert.Contains(token.Label, rotate.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("k3", (await new Etcdctl(etcd.ClientUrl).RunAsync("get", p + "k3")).StdOut, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Move(away, directory);
        }

        // Back: the very next calls reconnect, no restart.
        await Eventually.HoldsAsync(() => cold.Etcdctl(pki).RunAsync("put", p + "k3", "v3"), put => put.Succeeded, TimeSpan.FromSeconds(30));
        Assert.Equal(["v1"], (await cold.Etcdctl(pki).RunAsync("get", p + "k1", "--print-value-only")).EnsureSuccess().StdOutLines);
        Assert.Equal(["v3"], (await warm.Etcdctl(pki).RunAsync("get", p + "k3", "--print-value-only")).EnsureSuccess().StdOutLines);
        await warm.Services.GetRequiredService<DataKeyManager>().RotateAsync(default);
        Assert.Contains(cold.Logs.Entries, e => e.Is("EtcdShield.Keys.Pkcs11", "TokenRecovered")); // "available again"
        Assert.DoesNotContain(cold.Logs.Entries.Concat(warm.Logs.Entries), e => e.ToString().Contains(SoftHsmInProcess.Pin, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_newer_version_that_is_not_a_safe_kek_is_not_switched_to()
    {
        var token = hsm.CreateToken();
        CreateKek(token, "kek");
        var etcd = await SharedEtcd.GetAsync();
        var p = SharedEtcd.NewPrefix("pkcs11");
        await using var proxy = await StartProxyAsync(token, "kek", etcd);
        (await proxy.Etcdctl(pki).RunAsync("put", p + "a", "1")).EnsureSuccess();
        token.GenerateAesKey("kek#2", 32, sensitive: false, wrap: true, unwrap: true);

        var switched = await proxy.Services.GetRequiredService<KeyRingRefresher>().CheckNowAsync(default);
        (await proxy.Etcdctl(pki).RunAsync("put", p + "b", "2")).EnsureSuccess();

        Assert.False(switched);
        Assert.Equal("pkcs11:kek", (await StoredEnvelopeAsync(etcd, p + "b")).KekId);
        var warning = Assert.Single(proxy.Logs.Entries, e => e.Is("EtcdShield.Keys.KeyRingRefresher", "CheckFailed"));
        Assert.Contains("CKA_SENSITIVE", warning.ToString(), StringComparison.Ordinal);
    }

    internal static void CreateKek(InProcessToken token, string keyLabel)
    {
        using var store = Pkcs11KeyStore.Open(token.Settings(keyLabel), readWrite: true, NullLogger.Instance);
        store.CreateVersion(rotate: false);
    }

    /// <summary>The envelope etcd itself holds for <paramref name="key"/>, read past the proxy.</summary>
    internal static async Task<StoredEnvelope> StoredEnvelopeAsync(EtcdProcess etcd, string key)
    {
        var json = (await new Etcdctl(etcd.ClientUrl).RunAsync("get", key, "-w", "json")).EnsureSuccess();
        using var document = JsonDocument.Parse(json.StdOut);
        var value = Convert.FromBase64String(document.RootElement.GetProperty("kvs")[0].GetProperty("value").GetString()!);
        var header = ValueEnvelope.Parse(value);
        return new StoredEnvelope(header.GetKekIdString(), header.DataKeyId.ToString(), header.WrappedKey.Length);
    }

    private Task<ShieldServer> StartProxyAsync(InProcessToken token, string keyLabel, EtcdProcess etcd) =>
        ShieldServer.StartAsync(pki, etcd.ClientUrl, flags: token.Flags(keyLabel), output: output);

    internal sealed record StoredEnvelope(string KekId, string DataKeyId, int WrappedKeyLength);
}
