using System.Diagnostics.Metrics;
using System.Text;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using EtcdShield.Tests.Keys;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.Encryption;

public sealed class ValueProtectorTests : IDisposable
{
    private static readonly ByteString SecretKey = ByteString.CopyFromUtf8("/registry/secrets/a");

    private readonly FakeKeyEncryptionKey _kek = new("fake:protector");
    private readonly FakeTimeProvider _time = new();
    private readonly IMeterFactory _meters = TestMeterFactory.Create();
    private readonly EncryptionMetrics _metrics;
    private readonly MetricCollector<long> _encryptFailures;
    private readonly MetricCollector<long> _decryptFailures;
    private readonly MetricCollector<long> _legacyReads;
    private readonly FakeLogCollector _logs = new();
    private readonly FakeLogger<ValueProtector> _logger;
    private readonly List<IDisposable> _disposables = [];

    public ValueProtectorTests()
    {
        _metrics = new EncryptionMetrics(_meters);
        _encryptFailures = new MetricCollector<long>(_meters, EncryptionMetrics.MeterName, "etcdshield.encryption.encrypt_failures");
        _decryptFailures = new MetricCollector<long>(_meters, EncryptionMetrics.MeterName, "etcdshield.encryption.decrypt_failures");
        _legacyReads = new MetricCollector<long>(_meters, EncryptionMetrics.MeterName, "etcdshield.encryption.legacy_plaintext_reads");
        _logger = new FakeLogger<ValueProtector>(_logs);
    }

    public void Dispose()
    {
        foreach (IDisposable disposable in _disposables)
        {
            disposable.Dispose();
        }

        _kek.Dispose();
        _encryptFailures.Dispose();
        _decryptFailures.Dispose();
        _legacyReads.Dispose();
        _meters.Dispose();
    }

    private ValueProtector NewProtector(EncryptionOptions? options = null, KeyRing? ring = null, DataKeyOptions? keyOptions = null)
    {
        var keys = new DataKeyManager(ring ?? new KeyRing(_kek), keyOptions ?? DataKeyOptions.Default, _time, new KeyMetrics(_meters), new FakeLogger<DataKeyManager>(_logs));
        _disposables.Add(keys);
        return new ValueProtector(options ?? EncryptionOptions.Default, keys, _metrics, _logger);
    }

    private static async Task<RpcException> FailsWith(StatusCode code, Func<Task> action)
    {
        var ex = await Assert.ThrowsAsync<RpcException>(action);
        Assert.Equal(code, ex.StatusCode);
        return ex;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(256)]
    [InlineData(1024)]
    [InlineData(16384)]
    [InlineData(1536 * 1024 - 200)]
    public async Task Values_round_trip_through_the_protector(int size)
    {
        var protector = NewProtector();
        byte[] plaintext = new byte[size];
        new Random(size).NextBytes(plaintext);

        ByteString stored = await protector.ProtectAsync(SecretKey, ByteString.CopyFrom(plaintext), null, CancellationToken.None);
        ByteString read = await protector.UnprotectAsync(SecretKey, stored, default, CancellationToken.None);

        Assert.True(ValueEnvelope.HasEnvelopePrefix(stored.Span));
        Assert.Equal(plaintext, read.ToByteArray());
    }

    [Fact]
    public async Task Keys_outside_the_prefixes_pass_through_untouched()
    {
        var protector = NewProtector(EncryptionOptions.FromUtf8(["/registry/secrets/"]));
        ByteString key = ByteString.CopyFromUtf8("/registry/pods/default/web");
        ByteString value = ByteString.CopyFromUtf8("ESH\x01 looks like an envelope but is not ours to judge");

        Assert.False(protector.AppliesTo(key.Span));
        Assert.True(protector.AppliesTo(SecretKey.Span));
        Assert.Same(value, await protector.ProtectAsync(key, value, null, CancellationToken.None));
        Assert.Same(value, await protector.UnprotectAsync(key, value, default, CancellationToken.None));
        Assert.Equal(0, _kek.WrapCalls);
    }

    [Fact]
    public async Task The_hot_path_completes_synchronously_once_the_data_key_is_at_hand()
    {
        // What each call allocates is measured by the micro-benchmarks in bench/, not asserted here.
        var protector = NewProtector();
        ByteString plaintext = ByteString.CopyFrom(new byte[1024]);
        await protector.ProtectAsync(SecretKey, plaintext, null, CancellationToken.None);
        for (int i = 0; i < 100; i++)
        {
            ByteString stored = Synchronously.Completed(protector.ProtectAsync(SecretKey, plaintext, null, CancellationToken.None));
            Assert.Equal(plaintext, Synchronously.Completed(protector.UnprotectAsync(SecretKey, stored, default, CancellationToken.None)));
        }
    }

    [Fact]
    public async Task A_kek_outage_fails_the_write_as_unavailable_and_returns_nothing()
    {
        var protector = NewProtector();
        _kek.Down = true;

        var ex = await FailsWith(StatusCode.Unavailable, () => protector.ProtectAsync(SecretKey, ByteString.CopyFromUtf8("s3cr3t"), null, CancellationToken.None).AsTask());

        Assert.StartsWith("etcdshield: key provider unavailable: ", ex.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", ex.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(1, _encryptFailures.Counted("reason", "key_unavailable"));
        Assert.Contains(_logs.GetSnapshot(), r => r.Is<ValueProtector>("EncryptFailed") && r.Level == LogLevel.Warning);
    }

    [Fact]
    public async Task Values_too_large_after_encryption_are_refused_as_resource_exhausted()
    {
        var protector = NewProtector(new EncryptionOptions(maxValueBytes: 1000));
        int overhead = ValueEnvelope.Overhead(_kek.Id.Length, 40);

        ByteString fits = await protector.ProtectAsync(SecretKey, ByteString.CopyFrom(new byte[1000 - overhead]), null, CancellationToken.None);
        var ex = await FailsWith(StatusCode.ResourceExhausted, () => protector.ProtectAsync(SecretKey, ByteString.CopyFrom(new byte[1001 - overhead]), null, CancellationToken.None).AsTask());

        Assert.Equal(1000, fits.Length);
        Assert.StartsWith("etcdshield: value too large after encryption: ", ex.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(1, _encryptFailures.Counted("reason", "too_large"));
    }

    [Fact]
    public async Task Values_that_cannot_fit_any_envelope_are_refused_without_a_kek_call()
    {
        var protector = NewProtector(new EncryptionOptions(maxValueBytes: 1000));

        await FailsWith(StatusCode.ResourceExhausted, () => protector.ProtectAsync(SecretKey, ByteString.CopyFrom(new byte[990]), null, CancellationToken.None).AsTask());

        Assert.Equal(0, _kek.WrapCalls);
    }

    [Fact]
    public async Task A_tampered_value_is_data_loss_naming_the_key_but_not_the_value()
    {
        var protector = NewProtector();
        byte[] stored = (await protector.ProtectAsync(SecretKey, ByteString.CopyFromUtf8("s3cr3t-password"), null, CancellationToken.None)).ToByteArray();
        stored[^20] ^= 0x01;

        var ex = await FailsWith(StatusCode.DataLoss, () => protector.UnprotectAsync(SecretKey, ByteString.CopyFrom(stored), default, CancellationToken.None).AsTask());

        Assert.Equal("etcdshield: cannot decrypt value of key \"/registry/secrets/a\": authentication failed", ex.Status.Detail);
        Assert.Equal(1, _decryptFailures.Counted("reason", "authentication_failed"));
        var warning = Assert.Single(_logs.GetSnapshot(), r => r.Is<ValueProtector>("DecryptFailed"));
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("\"/registry/secrets/a\"", warning.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", _logs.AllText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_value_copied_to_another_key_is_data_loss()
    {
        var protector = NewProtector();
        ByteString stored = await protector.ProtectAsync(SecretKey, ByteString.CopyFromUtf8("s3cr3t"), null, CancellationToken.None);
        ByteString otherKey = ByteString.CopyFromUtf8("/registry/secrets/b");

        var ex = await FailsWith(StatusCode.DataLoss, () => protector.UnprotectAsync(otherKey, stored, default, CancellationToken.None).AsTask());

        Assert.Equal("etcdshield: cannot decrypt value of key \"/registry/secrets/b\": authentication failed", ex.Status.Detail);
    }

    [Fact]
    public async Task Random_values_round_trip_and_any_bit_flip_is_data_loss()
    {
        var random = new Random(4242);
        var protector = NewProtector();

        for (int i = 0; i < 200; i++)
        {
            byte[] keyBytes = new byte[random.Next(1, 80)];
            random.NextBytes(keyBytes);
            byte[] value = new byte[random.Next(0, 2000)];
            random.NextBytes(value);
            ByteString key = ByteString.CopyFrom(keyBytes);

            byte[] stored = (await protector.ProtectAsync(key, ByteString.CopyFrom(value), null, CancellationToken.None)).ToByteArray();
            Assert.Equal(value, (await protector.UnprotectAsync(key, ByteString.CopyFrom(stored), default, CancellationToken.None)).ToByteArray());

            stored[random.Next(stored.Length)] ^= (byte)(1 << random.Next(8));
            await FailsWith(StatusCode.DataLoss, () => protector.UnprotectAsync(key, ByteString.CopyFrom(stored), default, CancellationToken.None).AsTask());
        }
    }

    [Fact]
    public async Task An_unknown_kek_is_data_loss_naming_the_kek()
    {
        var protector = NewProtector();
        byte[] stored = (await protector.ProtectAsync(SecretKey, ByteString.CopyFromUtf8("s3cr3t"), null, CancellationToken.None)).ToByteArray();
        var cold = NewProtector();
        ByteString forged = ByteString.CopyFrom(EnvelopeForgery.Rebuild(stored, kekId: "kms:gone"));

        var ex = await FailsWith(StatusCode.DataLoss, () => cold.UnprotectAsync(SecretKey, forged, default, CancellationToken.None).AsTask());

        Assert.Equal("etcdshield: cannot decrypt value of key \"/registry/secrets/a\": unknown key-encryption key \"kms:gone\"", ex.Status.Detail);
        Assert.Equal(1, _decryptFailures.Counted("reason", "unknown_key"));
    }

    [Fact]
    public async Task A_kek_outage_on_a_cold_read_is_unavailable_not_data_loss()
    {
        var writer = NewProtector();
        ByteString stored = await writer.ProtectAsync(SecretKey, ByteString.CopyFromUtf8("s3cr3t"), null, CancellationToken.None);
        var cold = NewProtector();
        _kek.Down = true;

        var ex = await FailsWith(StatusCode.Unavailable, () => cold.UnprotectAsync(SecretKey, stored, default, CancellationToken.None).AsTask());

        Assert.StartsWith("etcdshield: key provider unavailable: cannot decrypt value of key \"/registry/secrets/a\"", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("plain old value")]
    [InlineData("")]
    [InlineData("ES")]
    public async Task Unencrypted_values_under_an_encrypted_prefix_are_refused_by_default(string value)
    {
        var protector = NewProtector();

        var ex = await FailsWith(StatusCode.DataLoss, () => protector.UnprotectAsync(SecretKey, ByteString.CopyFromUtf8(value), default, CancellationToken.None).AsTask());

        Assert.Equal("etcdshield: cannot decrypt value of key \"/registry/secrets/a\": value is not encrypted", ex.Status.Detail);
        Assert.Equal(1, _decryptFailures.Counted("reason", "not_encrypted"));
        Assert.Contains(_logs.GetSnapshot(), r => r.Is<ValueProtector>("PlaintextRefused"));
    }

    [Theory]
    [InlineData("plain old value")]
    [InlineData("")]
    public async Task Unencrypted_values_in_a_legacy_window_are_returned_and_counted(string value)
    {
        var protector = NewProtector(EncryptionOptions.FromUtf8(["/registry/"], legacyPlaintextPrefixes: ["/registry/secrets/"]));
        ByteString stored = ByteString.CopyFromUtf8(value);

        Assert.Same(stored, await protector.UnprotectAsync(SecretKey, stored, default, CancellationToken.None));
        Assert.Equal(1, _legacyReads.Counted());
        await FailsWith(StatusCode.DataLoss, () => protector.UnprotectAsync(ByteString.CopyFromUtf8("/registry/configmaps/x"), stored, default, CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task Plaintext_under_a_rollback_protected_prefix_is_refused_even_in_a_legacy_plaintext_window_unless_unbound_values_are_allowed_too()
    {
        ByteString stored = ByteString.CopyFromUtf8("planted");
        var windowOnly = NewProtector(EncryptionOptions.FromUtf8(legacyPlaintextPrefixes: ["/registry/"], rollbackProtectedPrefixes: ["/registry/secrets/"]));
        var both = NewProtector(EncryptionOptions.FromUtf8(legacyPlaintextPrefixes: ["/registry/"], rollbackProtectedPrefixes: ["/registry/secrets/"], legacyUnboundPrefixes: ["/registry/secrets/"]));

        await FailsWith(StatusCode.DataLoss, () => windowOnly.UnprotectAsync(SecretKey, stored, default, CancellationToken.None).AsTask());
        Assert.Same(stored, await both.UnprotectAsync(SecretKey, stored, default, CancellationToken.None));
    }

    [Fact]
    public async Task Envelope_lookalikes_fail_closed_even_in_a_legacy_window()
    {
        var protector = NewProtector(EncryptionOptions.FromUtf8(legacyPlaintextPrefixes: ["/registry/"]));

        var ex = await FailsWith(StatusCode.DataLoss, () => protector.UnprotectAsync(SecretKey, ByteString.CopyFromUtf8("ESH\x03 from the future"), default, CancellationToken.None).AsTask());

        Assert.Contains("unsupported envelope version", ex.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(1, _decryptFailures.Counted("reason", "unsupported_version"));
    }

    [Fact]
    public async Task Binary_keys_are_escaped_in_messages()
    {
        var protector = NewProtector();
        ByteString key = ByteString.CopyFrom([(byte)'/', (byte)'k', 0x00, 0xFF, (byte)'"', (byte)'\n']);

        var ex = await FailsWith(StatusCode.DataLoss, () => protector.UnprotectAsync(key, ByteString.CopyFromUtf8("plain"), default, CancellationToken.None).AsTask());

        Assert.Equal("etcdshield: cannot decrypt value of key \"/k\\x00\\xff\\\"\\x0a\": value is not encrypted", ex.Status.Detail);
    }

    [Fact]
    public async Task A_key_retired_between_lookup_and_use_is_looked_up_again()
    {
        using var kek = FileKeyEncryptionKey.FromKey(new byte[32]);
        EncryptionKey retired = await EncryptionKey.CreateAsync(kek, 100, _time, CancellationToken.None);
        using EncryptionKey current = await EncryptionKey.CreateAsync(kek, 100, _time, CancellationToken.None);
        byte[] stored = ValueEnvelope.Seal(current, SecretKey.Span, "s3cr3t"u8);
        DataKey evicted = current.DataKey.Duplicate();
        retired.Dispose();
        evicted.Dispose();
        var keys = new StubDataKeyProvider();
        keys.EncryptionKeys.Enqueue(retired);
        keys.EncryptionKeys.Enqueue(current);
        keys.DecryptionKeys.Enqueue(evicted);
        keys.DecryptionKeys.Enqueue(current.DataKey);
        var protector = new ValueProtector(EncryptionOptions.Default, keys, _metrics, _logger);

        ByteString sealedValue = await protector.ProtectAsync(SecretKey, ByteString.CopyFromUtf8("v"), null, CancellationToken.None);
        ByteString opened = await protector.UnprotectAsync(SecretKey, ByteString.CopyFrom(stored), default, CancellationToken.None);

        Assert.Equal(current.DataKey.Id, ValueEnvelope.Parse(sealedValue.Span).DataKeyId);
        Assert.Equal("s3cr3t", opened.ToStringUtf8());
    }

    [Fact]
    public async Task A_provider_that_only_offers_retired_keys_fails_as_unavailable()
    {
        using var kek = FileKeyEncryptionKey.FromKey(new byte[32]);
        EncryptionKey retired = await EncryptionKey.CreateAsync(kek, 100, _time, CancellationToken.None);
        retired.Dispose();
        var keys = new StubDataKeyProvider();
        keys.EncryptionKeys.Enqueue(retired);
        var protector = new ValueProtector(EncryptionOptions.Default, keys, _metrics, _logger);

        await FailsWith(StatusCode.Unavailable, () => protector.ProtectAsync(SecretKey, ByteString.CopyFromUtf8("v"), null, CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task Writes_keep_working_across_write_limit_rotations()
    {
        var protector = NewProtector(keyOptions: new DataKeyOptions(maxWritesPerKey: 3));
        var stored = new List<ByteString>();

        for (int i = 0; i < 10; i++)
        {
            stored.Add(await protector.ProtectAsync(SecretKey, ByteString.CopyFromUtf8($"v{i}"), null, CancellationToken.None));
        }

        Assert.Equal(4, stored.Select(s => ValueEnvelope.Parse(s.Span).DataKeyId).Distinct().Count());
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal($"v{i}", (await protector.UnprotectAsync(SecretKey, stored[i], default, CancellationToken.None)).ToStringUtf8());
        }
    }

    [Fact]
    public async Task Concurrent_writers_across_many_rotations_all_succeed_and_read_back()
    {
        var protector = NewProtector(keyOptions: new DataKeyOptions(maxWritesPerKey: 500));
        const int Writers = 8;
        const int WritesEach = 1000;
        var stored = new ByteString[Writers, WritesEach];

        await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            for (int i = 0; i < WritesEach; i++)
            {
                stored[w, i] = await protector.ProtectAsync(SecretKey, ByteString.CopyFromUtf8($"{w}:{i}"), null, CancellationToken.None);
            }
        })));

        var cold = NewProtector();
        int unwrapsBeforeCold = _kek.UnwrapCalls;
        await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            for (int i = 0; i < WritesEach; i++)
            {
                Assert.Equal($"{w}:{i}", (await cold.UnprotectAsync(SecretKey, stored[w, i], default, CancellationToken.None)).ToStringUtf8());
            }
        })));

        var sealedPerKey = new Dictionary<DataKeyId, int>();
        foreach (ByteString value in stored)
        {
            DataKeyId id = ValueEnvelope.Parse(value.Span).DataKeyId;
            sealedPerKey[id] = sealedPerKey.GetValueOrDefault(id) + 1;
        }

        // No data key ever seals more than its limit. (A key may retire a little early when a rotation races a
        // writer, so the number of keys is at least, not exactly, writes / limit.)
        Assert.All(sealedPerKey.Values, count => Assert.InRange(count, 1, 500));
        Assert.True(sealedPerKey.Count >= Writers * WritesEach / 500);
        // The cold proxy asked the KEK once per data key, not once per value.
        Assert.Equal(sealedPerKey.Count, _kek.UnwrapCalls - unwrapsBeforeCold);
    }

    [Fact]
    public async Task Passthrough_leaves_every_value_untouched()
    {
        var protector = PassthroughValueProtector.Instance;
        ByteString value = ByteString.CopyFrom(Encoding.UTF8.GetBytes("s3cr3t"));

        Assert.False(protector.Enabled);
        Assert.False(protector.AppliesTo(SecretKey.Span));
        Assert.Same(value, await protector.ProtectAsync(SecretKey, value, null, CancellationToken.None));
        Assert.Same(value, await protector.UnprotectAsync(SecretKey, value, default, CancellationToken.None));
    }
}
