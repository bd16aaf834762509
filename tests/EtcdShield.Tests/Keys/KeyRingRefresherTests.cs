using EtcdShield.Encryption;
using EtcdShield.Keys;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;

namespace EtcdShield.Tests.Keys;

public sealed class KeyRingRefresherTests : IDisposable
{
    private readonly FakeKeyEncryptionKey _v1 = new("pkcs11:kek");
    private readonly FakeKeyEncryptionKey _v2 = new("pkcs11:kek#2");
    private readonly System.Diagnostics.Metrics.IMeterFactory _meters = TestMeterFactory.Create();
    private readonly FakeLogCollector _logs = new();
    private readonly DataKeyManager _manager;
    private readonly KeyRefresherSource _source = new();

    public KeyRingRefresherTests()
    {
        _manager = new DataKeyManager(new KeyRing(_v1), DataKeyOptions.Default, TimeProvider.System, new KeyMetrics(_meters), NullLogger<DataKeyManager>.Instance);
        _source.Ring = new KeyRing(_v1);
    }

    public void Dispose()
    {
        _manager.Dispose();
        _v1.Dispose();
        _v2.Dispose();
        _meters.Dispose();
    }

    [Fact]
    public async Task The_same_current_kek_changes_nothing()
    {
        using var refresher = NewRefresher();
        var key = await _manager.GetEncryptionKeyAsync(default);

        Assert.False(await refresher.CheckNowAsync(default));
        Assert.Same(key, await _manager.GetEncryptionKeyAsync(default));
        Assert.Equal(1, _v1.WrapCalls);
    }

    [Fact]
    public async Task A_new_current_kek_is_switched_to_and_wraps_a_new_data_key_at_once()
    {
        using var refresher = NewRefresher();
        var before = await _manager.GetEncryptionKeyAsync(default);
        _source.Ring = new KeyRing(_v2, _v1);

        Assert.True(await refresher.CheckNowAsync(default));

        Assert.Equal("pkcs11:kek#2", _manager.KeyRing.Current.Id);
        Assert.Equal(1, _v2.WrapCalls);
        var after = await _manager.GetEncryptionKeyAsync(default);
        Assert.Equal("pkcs11:kek#2", after.DataKey.KekId);
        Assert.NotSame(before, after);
        Assert.Equal(1, _v2.WrapCalls);
        Assert.True(_manager.KeyRing.TryGet("pkcs11:kek", out _));
    }

    [Fact]
    public async Task A_provider_that_cannot_answer_keeps_the_ring_and_logs_once()
    {
        using var refresher = NewRefresher();
        _source.Failure = new KeyProviderUnavailableException("the HSM is away");

        Assert.False(await refresher.CheckNowAsync(default));
        Assert.False(await refresher.CheckNowAsync(default));

        Assert.Equal("pkcs11:kek", _manager.KeyRing.Current.Id);
        Assert.Single(_logs.GetSnapshot(), r => r.Is<KeyRingRefresher>("CheckFailed"));
    }

    [Fact]
    public async Task A_new_kek_that_cannot_wrap_yet_is_still_switched_to_and_the_next_write_retries()
    {
        using var refresher = NewRefresher();
        await _manager.GetEncryptionKeyAsync(default);
        _v2.Down = true;
        _source.Ring = new KeyRing(_v2, _v1);

        Assert.True(await refresher.CheckNowAsync(default));
        Assert.Single(_logs.GetSnapshot(), r => r.Is<KeyRingRefresher>("RotationDeferred"));
        await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => _manager.GetEncryptionKeyAsync(default).AsTask());

        _v2.Down = false;
        var key = await _manager.GetEncryptionKeyAsync(default);
        Assert.Equal("pkcs11:kek#2", key.DataKey.KekId);
    }

    private KeyRingRefresher NewRefresher() =>
        new(_source.LoadAsync, _manager, TimeSpan.FromMinutes(1), TimeProvider.System, new FakeLogger<KeyRingRefresher>(_logs));

    private sealed class KeyRefresherSource
    {
        public KeyRing? Ring { get; set; }

        public Exception? Failure { get; set; }

        // The refresher passes its token; this source answers at once and has nothing to cancel.
        public Task<KeyRing> LoadAsync(CancellationToken _) =>
            Failure is not null ? Task.FromException<KeyRing>(Failure) : Task.FromResult(Ring!);
    }
}
