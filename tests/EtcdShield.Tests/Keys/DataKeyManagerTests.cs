using System.Diagnostics.Metrics;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using EtcdShield.Tests.Encryption;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.Keys;

public sealed class DataKeyManagerTests : IDisposable
{
    private static readonly byte[] EtcdKey = "/registry/secrets/default/db"u8.ToArray();

    private readonly FakeKeyEncryptionKey _kek = new("fake:current");
    private readonly FakeTimeProvider _time = new();
    private readonly IMeterFactory _meters = TestMeterFactory.Create();
    private readonly KeyMetrics _metrics;
    private readonly MetricCollector<long> _rotations;
    private readonly MetricCollector<long> _unwraps;
    private readonly FakeLogCollector _logs = new();
    private readonly FakeLogger<DataKeyManager> _logger;
    private readonly List<IDisposable> _disposables = [];

    public DataKeyManagerTests()
    {
        _metrics = new KeyMetrics(_meters);
        _rotations = new MetricCollector<long>(_meters, KeyMetrics.MeterName, "etcdshield.keys.dek_rotations");
        _unwraps = new MetricCollector<long>(_meters, KeyMetrics.MeterName, "etcdshield.keys.kek_unwraps");
        _logger = new FakeLogger<DataKeyManager>(_logs);
    }

    public void Dispose()
    {
        foreach (IDisposable disposable in _disposables)
        {
            disposable.Dispose();
        }

        _kek.Dispose();
        _rotations.Dispose();
        _unwraps.Dispose();
        _meters.Dispose();
    }

    private DataKeyManager NewManager(DataKeyOptions? options = null, KeyRing? ring = null)
    {
        var manager = new DataKeyManager(ring ?? new KeyRing(_kek), options ?? DataKeyOptions.Default, _time, _metrics, _logger);
        _disposables.Add(manager);
        return manager;
    }

    private static async Task<byte[]> SealAsync(DataKeyManager manager, string plaintext = "s3cr3t")
    {
        EncryptionKey key = await manager.GetEncryptionKeyAsync(CancellationToken.None);
        return ValueEnvelope.Seal(key, EtcdKey, System.Text.Encoding.UTF8.GetBytes(plaintext));
    }

    private static ValueTask<DataKey> Lookup(DataKeyManager manager, byte[] envelope, CancellationToken cancellationToken = default) =>
        manager.GetDecryptionKeyAsync(ValueEnvelope.Parse(envelope), cancellationToken);

    [Fact]
    public async Task Creates_one_data_key_on_first_use_and_then_returns_it_synchronously()
    {
        var manager = NewManager();

        EncryptionKey first = await manager.GetEncryptionKeyAsync(CancellationToken.None);
        EncryptionKey second = Synchronously.Completed(manager.GetEncryptionKeyAsync(CancellationToken.None));

        Assert.Same(first, second);
        Assert.Equal(_kek.Id, first.DataKey.KekId);
        Assert.Equal(1, _kek.WrapCalls);
        Assert.Equal(1, _rotations.Counted("reason", "initial"));
        Assert.Contains(_logs.GetSnapshot(), r => r.Is<DataKeyManager>("DataKeyCreated") && r.Message.Contains(first.DataKey.Id.ToString(), StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_key_gauges_show_the_current_kek_and_the_data_keys_held_under_each_kek()
    {
        using var current = new MetricCollector<int>(_meters, KeyMetrics.MeterName, "etcdshield.keys.kek_current");
        using var held = new MetricCollector<int>(_meters, KeyMetrics.MeterName, "etcdshield.keys.data_keys");
        using var newKek = new FakeKeyEncryptionKey("fake:next");
        var manager = NewManager();
        static string Observe(MetricCollector<int> collector)
        {
            collector.Clear();
            collector.RecordObservableInstruments();
            return string.Join(",", collector.GetMeasurementSnapshot().Select(m => $"{m.Tags["kek"]}={m.Value}").Order(StringComparer.Ordinal));
        }

        var before = (Observe(current), Observe(held));
        await manager.GetEncryptionKeyAsync(CancellationToken.None);
        var sealing = (Observe(current), Observe(held));
        // After a KEK rotation the old sealing key stays cached (its values keep decrypting) beside the new one.
        manager.ReplaceKeyRing(new KeyRing(newKek, _kek));
        await manager.RotateAsync(CancellationToken.None);
        var rotated = (Observe(current), Observe(held));

        Assert.Equal(("fake:current=1", ""), before);
        Assert.Equal(("fake:current=1", "fake:current=1"), sealing);
        Assert.Equal(("fake:next=1", "fake:current=1,fake:next=1"), rotated);
    }

    [Fact]
    public async Task Rotates_after_the_configured_number_of_writes()
    {
        var manager = NewManager(new DataKeyOptions(maxWritesPerKey: 5));
        EncryptionKey first = await manager.GetEncryptionKeyAsync(CancellationToken.None);
        var envelopes = new List<byte[]>();
        for (int i = 0; i < 5; i++)
        {
            envelopes.Add(await SealAsync(manager));
        }

        EncryptionKey second = await manager.GetEncryptionKeyAsync(CancellationToken.None);
        byte[] afterRotation = ValueEnvelope.Seal(second, EtcdKey, "x"u8);

        Assert.NotEqual(first.DataKey.Id, second.DataKey.Id);
        Assert.All(envelopes, e => Assert.Equal(first.DataKey.Id, ValueEnvelope.Parse(e).DataKeyId));
        Assert.Equal(second.DataKey.Id, ValueEnvelope.Parse(afterRotation).DataKeyId);
        Assert.True(first.DataKey.IsDisposed);
        Assert.Equal(1, _rotations.Counted("reason", "write_limit"));
    }

    [Fact]
    public async Task Rotates_when_the_data_key_reaches_its_maximum_age()
    {
        var manager = NewManager(new DataKeyOptions(maxKeyAge: TimeSpan.FromHours(24)));
        EncryptionKey first = await manager.GetEncryptionKeyAsync(CancellationToken.None);

        _time.Advance(TimeSpan.FromHours(24) - TimeSpan.FromTicks(1));
        Assert.Same(first, await manager.GetEncryptionKeyAsync(CancellationToken.None));

        _time.Advance(TimeSpan.FromTicks(1));
        EncryptionKey second = await manager.GetEncryptionKeyAsync(CancellationToken.None);

        Assert.NotSame(first, second);
        Assert.NotEqual(first.DataKey.Id, second.DataKey.Id);
        Assert.Equal(1, _rotations.Counted("reason", "age"));
    }

    [Fact]
    public async Task Rotates_to_the_new_kek_and_keeps_reading_values_of_the_old_one()
    {
        using var newKek = new FakeKeyEncryptionKey("fake:next");
        var manager = NewManager();
        byte[] oldValue = await SealAsync(manager, "old");
        _kek.ResetCounts();

        manager.ReplaceKeyRing(new KeyRing(newKek, _kek));
        EncryptionKey key = await manager.GetEncryptionKeyAsync(CancellationToken.None);
        DataKey oldKey = await Lookup(manager, oldValue);

        Assert.Equal("fake:next", key.DataKey.KekId);
        Assert.Equal("old"u8.ToArray(), ValueEnvelope.Open(oldKey, EtcdKey, oldValue));
        Assert.Equal(0, _kek.UnwrapCalls);
        Assert.Equal(1, _rotations.Counted("reason", "kek_changed"));
    }

    [Fact]
    public async Task Manual_rotation_replaces_a_key_that_is_still_usable()
    {
        var manager = NewManager();
        EncryptionKey first = await manager.GetEncryptionKeyAsync(CancellationToken.None);

        await manager.RotateAsync(CancellationToken.None);

        Assert.NotEqual(first.DataKey.Id, (await manager.GetEncryptionKeyAsync(CancellationToken.None)).DataKey.Id);
        Assert.Equal(1, _rotations.Counted("reason", "manual"));
    }

    [Fact]
    public async Task Concurrent_callers_share_one_data_key_creation()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _kek.WrapGate = gate.Task;
        var manager = NewManager();

        var waiting = Enumerable.Range(0, 20).Select(_ => manager.GetEncryptionKeyAsync(CancellationToken.None).AsTask()).ToList();
        Assert.All(waiting, t => Assert.False(t.IsCompleted));
        gate.SetResult();
        EncryptionKey[] keys = await Task.WhenAll(waiting);

        Assert.Equal(1, _kek.WrapCalls);
        Assert.All(keys, k => Assert.Same(keys[0], k));
    }

    [Fact]
    public async Task A_kek_outage_fails_key_creation_and_a_later_call_recovers()
    {
        var manager = NewManager();
        _kek.Down = true;

        var ex = await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => manager.GetEncryptionKeyAsync(CancellationToken.None).AsTask());

        Assert.Contains("fake:current", ex.Message, StringComparison.Ordinal);
        Assert.Contains(_logs.GetSnapshot(), r => r.Is<DataKeyManager>("DataKeyCreationFailed"));

        _kek.Down = false;
        Assert.NotNull(await manager.GetEncryptionKeyAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_kek_failing_with_a_foreign_exception_reports_unavailable_without_its_message()
    {
        var manager = NewManager(ring: new KeyRing(new ThrowingKeyEncryptionKey()));

        var ex = await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => manager.GetEncryptionKeyAsync(CancellationToken.None).AsTask());

        Assert.Contains("InvalidOperationException", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret detail", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Own_writes_decrypt_without_calling_the_kek()
    {
        var manager = NewManager();
        byte[] envelope = await SealAsync(manager);
        _kek.ResetCounts();

        DataKey key = Synchronously.Completed(Lookup(manager, envelope));

        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(key, EtcdKey, envelope));
        Assert.Equal(0, _kek.UnwrapCalls);
    }

    [Fact]
    public async Task Values_of_a_retired_data_key_decrypt_from_the_cache_until_its_ttl()
    {
        var manager = NewManager(new DataKeyOptions(maxWritesPerKey: 1, decryptionCacheTtl: TimeSpan.FromMinutes(10)));
        byte[] envelope = await SealAsync(manager);
        await SealAsync(manager);
        _kek.ResetCounts();

        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await Lookup(manager, envelope), EtcdKey, envelope));
        Assert.Equal(0, _kek.UnwrapCalls);

        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await Lookup(manager, envelope), EtcdKey, envelope));
        Assert.Equal(1, _kek.UnwrapCalls);
    }

    [Fact]
    public async Task A_data_key_creation_and_an_unwrap_are_spans_beneath_the_request_that_needed_them_naming_the_kek()
    {
        using var spans = new CollectedSpans(KeyTraces.SourceName);
        using var request = new System.Diagnostics.Activity("request").Start();
        byte[] envelope = await SealAsync(NewManager());

        DataKey key = await Lookup(NewManager(), envelope);

        var traced = spans.OfTrace(request.TraceId);
        Assert.Equal(["kek.wrap", "kek.unwrap"], traced.Select(s => s.DisplayName));
        Assert.All(traced, s => Assert.Equal((request.SpanId, _kek.Id), (s.ParentSpanId, s.GetTagItem("etcdshield.kek_id"))));
        Assert.All(traced, s => Assert.Equal(System.Diagnostics.ActivityStatusCode.Unset, s.Status));
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(key, EtcdKey, envelope));
    }

    [Fact]
    public async Task Fifty_concurrent_decrypts_of_a_cold_key_unwrap_once()
    {
        byte[] envelope = await SealAsync(NewManager());
        var cold = NewManager();
        _kek.ResetCounts();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _kek.UnwrapGate = gate.Task;

        var lookups = Enumerable.Range(0, 50).Select(_ => Lookup(cold, envelope).AsTask()).ToList();
        Assert.All(lookups, t => Assert.False(t.IsCompleted));
        gate.SetResult();
        DataKey[] keys = await Task.WhenAll(lookups);

        Assert.Equal(1, _kek.UnwrapCalls);
        Assert.All(keys, k => Assert.Same(keys[0], k));
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(keys[0], EtcdKey, envelope));
        Assert.Equal(1, _unwraps.Counted("outcome", "success"));
        Assert.Same(keys[0], Synchronously.Completed(Lookup(cold, envelope)));
    }

    [Fact]
    public async Task A_waiter_that_gives_up_does_not_cancel_the_shared_unwrap()
    {
        byte[] envelope = await SealAsync(NewManager());
        var cold = NewManager();
        _kek.ResetCounts();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _kek.UnwrapGate = gate.Task;
        using var giveUp = new CancellationTokenSource();

        Task<DataKey> impatient = Lookup(cold, envelope, giveUp.Token).AsTask();
        Task<DataKey> patient = Lookup(cold, envelope).AsTask();
        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => impatient);
        gate.SetResult();

        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await patient, EtcdKey, envelope));
        Assert.Equal(1, _kek.UnwrapCalls);
    }

    [Fact]
    public async Task A_forged_header_cannot_join_or_poison_a_pending_unwrap()
    {
        byte[] envelope = await SealAsync(NewManager());
        byte[] wrapped = ValueEnvelope.Parse(envelope).WrappedKey.ToArray();
        wrapped[^1] ^= 1;
        byte[] forged = EnvelopeForgery.Rebuild(envelope, wrappedKey: wrapped);
        var cold = NewManager();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _kek.UnwrapGate = gate.Task;

        Task<DataKey> legitimate = Lookup(cold, envelope).AsTask();
        Task<DataKey> forgery = Lookup(cold, forged).AsTask();
        gate.SetResult();

        await Assert.ThrowsAsync<KeyUnwrapException>(() => forgery);
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await legitimate, EtcdKey, envelope));
        await Assert.ThrowsAsync<KeyUnwrapException>(() => Lookup(cold, forged).AsTask());
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await Lookup(cold, envelope), EtcdKey, envelope));
    }

    [Fact]
    public async Task A_refused_wrapping_is_not_sent_to_the_kek_again_for_a_minute_and_genuine_ones_still_are()
    {
        var writer = NewManager(new DataKeyOptions(maxWritesPerKey: 1));
        byte[] envelope = await SealAsync(writer);
        byte[] other = await SealAsync(writer);
        byte[] wrapped = ValueEnvelope.Parse(envelope).WrappedKey.ToArray();
        wrapped[^1] ^= 1;
        byte[] forged = EnvelopeForgery.Rebuild(envelope, wrappedKey: wrapped);
        var cold = NewManager();
        _kek.ResetCounts();

        for (int i = 0; i < 10; i++)
        {
            await Assert.ThrowsAsync<KeyUnwrapException>(() => Lookup(cold, forged).AsTask());
        }

        Assert.Equal(1, _kek.UnwrapCalls);
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await Lookup(cold, envelope), EtcdKey, envelope));
        Assert.Equal(2, _kek.UnwrapCalls);
        _time.Advance(TimeSpan.FromMinutes(1));
        await Assert.ThrowsAsync<KeyUnwrapException>(() => Lookup(cold, forged).AsTask());
        Assert.Equal(3, _kek.UnwrapCalls);

        // An outage says nothing about the bytes: the next read asks again.
        _kek.Down = true;
        await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => Lookup(cold, other).AsTask());
        _kek.Down = false;
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await Lookup(cold, other), EtcdKey, other));
    }

    [Fact]
    public async Task A_real_wrapped_key_paired_with_another_key_id_is_rejected_and_not_cached()
    {
        var writer = NewManager(new DataKeyOptions(maxWritesPerKey: 1));
        byte[] first = await SealAsync(writer, "first");
        byte[] second = await SealAsync(writer, "second");
        byte[] forged = EnvelopeForgery.Rebuild(first, wrappedKey: ValueEnvelope.Parse(second).WrappedKey.ToArray());
        var cold = NewManager();

        var ex = await Assert.ThrowsAsync<EnvelopeAuthenticationException>(() => Lookup(cold, forged).AsTask());

        Assert.Equal(EnvelopeErrorReason.AuthenticationFailed, ex.Reason);
        // Neither key id kept what the forgery unwrapped: each genuine envelope needs its own unwrap.
        _kek.ResetCounts();
        await Lookup(cold, first);
        await Lookup(cold, second);
        Assert.Equal(2, _kek.UnwrapCalls);
    }

    [Fact]
    public async Task An_unknown_kek_id_is_reported_without_calling_any_kek()
    {
        byte[] envelope = EnvelopeForgery.Rebuild(await SealAsync(NewManager()), kekId: "kms:decommissioned");
        var cold = NewManager();
        _kek.ResetCounts();

        var ex = await Assert.ThrowsAsync<UnknownKeyException>(() => Lookup(cold, envelope).AsTask());

        Assert.Equal(EnvelopeErrorReason.UnknownKey, ex.Reason);
        Assert.Equal("kms:decommissioned", ex.KekId);
        Assert.Equal(0, _kek.UnwrapCalls);
    }

    [Fact]
    public async Task A_kek_that_finds_no_such_key_is_not_asked_again_for_a_minute()
    {
        byte[] envelope = await SealAsync(NewManager());
        var cold = NewManager();
        _kek.ResetCounts();
        _kek.Unknown = true;

        await Assert.ThrowsAsync<UnknownKeyException>(() => Lookup(cold, envelope).AsTask());
        _kek.Unknown = false;
        await Assert.ThrowsAsync<UnknownKeyException>(() => Lookup(cold, envelope).AsTask());
        Assert.Equal(1, _kek.UnwrapCalls);

        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await Lookup(cold, envelope), EtcdKey, envelope));
    }

    [Fact]
    public async Task A_new_key_ring_forgets_what_was_refused()
    {
        byte[] envelope = await SealAsync(NewManager());
        var cold = NewManager();
        _kek.Unknown = true;
        await Assert.ThrowsAsync<UnknownKeyException>(() => Lookup(cold, envelope).AsTask());
        _kek.Unknown = false;

        cold.ReplaceKeyRing(new KeyRing(_kek));

        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await Lookup(cold, envelope), EtcdKey, envelope));
    }

    [Fact]
    public async Task A_kek_outage_during_unwrap_is_not_cached()
    {
        byte[] envelope = await SealAsync(NewManager());
        var cold = NewManager();
        _kek.Down = true;

        await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => Lookup(cold, envelope).AsTask());
        _kek.Down = false;

        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await Lookup(cold, envelope), EtcdKey, envelope));
        Assert.Equal(1, _unwraps.Counted("outcome", "unavailable"));
    }

    [Fact]
    public async Task The_cache_is_bounded_and_disposes_what_it_evicts()
    {
        var writer = NewManager(new DataKeyOptions(maxWritesPerKey: 1));
        byte[][] envelopes = [await SealAsync(writer), await SealAsync(writer), await SealAsync(writer)];
        var reader = NewManager(new DataKeyOptions(decryptionCacheSize: 2));
        _kek.ResetCounts();

        DataKey first = await Lookup(reader, envelopes[0]);
        _time.Advance(TimeSpan.FromSeconds(1));
        await Lookup(reader, envelopes[1]);
        _time.Advance(TimeSpan.FromSeconds(1));
        await Lookup(reader, envelopes[2]);

        Assert.True(first.IsDisposed);
        Assert.Equal(3, _kek.UnwrapCalls);
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(await Lookup(reader, envelopes[0]), EtcdKey, envelopes[0]));
        Assert.Equal(4, _kek.UnwrapCalls);
    }

    [Fact]
    public async Task Different_wrapped_bytes_for_a_cached_key_id_are_unwrapped_on_their_own_and_never_replace_it()
    {
        byte[] envelope = await SealAsync(NewManager());
        var reader = NewManager();
        DataKey genuine = await Lookup(reader, envelope);
        byte[] wrapped = ValueEnvelope.Parse(envelope).WrappedKey.ToArray();
        wrapped[0] ^= 1;
        _kek.ResetCounts();

        await Assert.ThrowsAsync<KeyUnwrapException>(() => Lookup(reader, EnvelopeForgery.Rebuild(envelope, wrappedKey: wrapped)).AsTask());

        Assert.Same(genuine, await Lookup(reader, envelope));
        Assert.Equal(1, _kek.UnwrapCalls);
    }

    [Fact]
    public async Task A_second_wrapping_that_unwraps_read_first_does_not_change_what_genuine_envelopes_get()
    {
        var lenient = new LenientKeyEncryptionKey(_kek);
        byte[] envelope = await SealAsync(NewManager(ring: new KeyRing(lenient)));
        byte[] forged = EnvelopeForgery.Rebuild(envelope, wrappedKey: [.. ValueEnvelope.Parse(envelope).WrappedKey, 0]);
        var cold = NewManager(ring: new KeyRing(lenient));

        DataKey forgedKey = await Lookup(cold, forged);
        Assert.Throws<EnvelopeAuthenticationException>(() => ValueEnvelope.Open(forgedKey, EtcdKey, forged));
        DataKey genuineKey = await Lookup(cold, envelope);

        Assert.NotSame(forgedKey, genuineKey);
        Assert.Equal("s3cr3t"u8.ToArray(), ValueEnvelope.Open(genuineKey, EtcdKey, envelope));
        Assert.Same(forgedKey, await Lookup(cold, forged));
        Assert.Same(genuineKey, await Lookup(cold, envelope));
    }

    [Fact]
    public async Task A_second_wrapping_of_the_sealing_key_does_not_reach_it_and_needs_its_own_unwrap()
    {
        var lenient = new LenientKeyEncryptionKey(_kek);
        var manager = NewManager(ring: new KeyRing(lenient));
        byte[] envelope = await SealAsync(manager);
        byte[] forged = EnvelopeForgery.Rebuild(envelope, wrappedKey: [.. ValueEnvelope.Parse(envelope).WrappedKey, 0]);
        _kek.ResetCounts();

        DataKey forgedKey = await Lookup(manager, forged);
        DataKey sealing = (await manager.GetEncryptionKeyAsync(CancellationToken.None)).DataKey;

        Assert.NotSame(sealing, forgedKey);
        Assert.Equal(1, _kek.UnwrapCalls);
        Assert.Equal(0, _kek.WrapCalls);
        Assert.Same(sealing, await Lookup(manager, envelope));
    }

    [Fact]
    public async Task Disposing_the_manager_zeroes_its_keys()
    {
        var manager = NewManager();
        EncryptionKey key = await manager.GetEncryptionKeyAsync(CancellationToken.None);

        manager.Dispose();

        Assert.True(key.DataKey.IsDisposed);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => manager.GetEncryptionKeyAsync(CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task Logs_never_contain_key_material()
    {
        var manager = NewManager(new DataKeyOptions(maxWritesPerKey: 1));
        await SealAsync(manager);
        EncryptionKey key = await manager.GetEncryptionKeyAsync(CancellationToken.None);

        string logs = _logs.AllText();

        Assert.DoesNotContain(Convert.ToHexString(key.DataKey.WrappedKey), logs, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Convert.ToBase64String(key.DataKey.WrappedKey), logs, StringComparison.Ordinal);
    }

    private sealed class ThrowingKeyEncryptionKey : IKeyEncryptionKey
    {
        public string Id => "kms:broken";

        public ValueTask<byte[]> WrapAsync(ReadOnlyMemory<byte> dek, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("secret detail");

        public ValueTask<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrappedDek, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("secret detail");
    }

    /// <summary>A KEK that ignores a trailing zero byte, as a lenient KMS plugin ignores what it does not know.</summary>
    private sealed class LenientKeyEncryptionKey(FakeKeyEncryptionKey inner) : IKeyEncryptionKey
    {
        public string Id => "fake:lenient";

        public ValueTask<byte[]> WrapAsync(ReadOnlyMemory<byte> dek, CancellationToken cancellationToken) => inner.WrapAsync(dek, cancellationToken);

        public ValueTask<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrappedDek, CancellationToken cancellationToken) =>
            inner.UnwrapAsync(wrappedDek.Length % 8 == 1 && wrappedDek.Span[^1] == 0 ? wrappedDek[..^1] : wrappedDek, cancellationToken);
    }
}
