using EtcdShield.Encryption;
using EtcdShield.Keys;
using EtcdShield.Migration;
using System.Diagnostics.Metrics;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Tests.Keys;
using EtcdShield.Tests.Relay;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EtcdShield.Tests.Migration;

/// <summary>What migrate may re-seal: only values that authenticate, and plaintext only inside its own window.</summary>
public sealed class StorageMigratorTests : IDisposable
{
    private readonly FakeKeyEncryptionKey _kek = new("fake:migrate");
    private readonly IMeterFactory _meters = TestMeterFactory.Create();
    private readonly EncryptionMetrics _metrics;
    private readonly DataKeyManager _keys;
    private readonly InMemoryEtcd _etcd = new();

    public StorageMigratorTests()
    {
        _metrics = new EncryptionMetrics(_meters);
        _keys = new DataKeyManager(new KeyRing(_kek), DataKeyOptions.Default, new FakeTimeProvider(), new KeyMetrics(_meters), NullLogger<DataKeyManager>.Instance);
    }

    public void Dispose()
    {
        _keys.Dispose();
        _kek.Dispose();
        _meters.Dispose();
    }

    [Fact]
    public async Task Plaintext_outside_the_window_is_refused_listed_and_never_written()
    {
        _etcd.Store.Put("/app/planted", Bytes("attacker-chosen"));

        var report = await MigrateAsync(EncryptionOptions.FromUtf8(["/app/", "/legacy/"], ["/legacy/"]));

        Assert.Equal(["\"/app/planted\""], report.Refused);
        Assert.Equal(0, report.PlaintextEncrypted);
        Assert.False(report.Complete);
        Assert.Equal(0, Writes);
        Assert.Equal("attacker-chosen", Stored("/app/planted").ToStringUtf8());
        Assert.Contains("refused (plaintext outside a --legacy-plaintext-prefix window, left as they are): 1", report.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plaintext_inside_the_window_is_sealed()
    {
        _etcd.Store.Put("/legacy/config", Bytes("from-before"));
        var options = EncryptionOptions.FromUtf8(legacyPlaintextPrefixes: ["/legacy/"]);

        var report = await MigrateAsync(options);

        Assert.True(report.Complete);
        Assert.Equal(1, report.PlaintextEncrypted);
        Assert.True(ValueEnvelope.HasEnvelopePrefix(Stored("/legacy/config").Span));
        Assert.Equal("from-before", (await Protector(EncryptionOptions.Default).UnprotectAsync(Bytes("/legacy/config"), Stored("/legacy/config"), default, CancellationToken.None)).ToStringUtf8());
    }

    [Fact]
    public async Task An_envelope_under_the_current_kek_moved_to_another_key_is_reported_not_counted_current()
    {
        var sealedForA = await Protector(EncryptionOptions.Default).ProtectAsync(Bytes("/app/a"), Bytes("secret"), null, CancellationToken.None);
        _etcd.Store.Put("/app/a", sealedForA);
        _etcd.Store.Put("/app/b", sealedForA);

        var report = await MigrateAsync(EncryptionOptions.Default);

        Assert.Equal(["\"/app/b\""], report.Failed);
        Assert.Equal(1, report.AlreadyCurrent);
        Assert.False(report.Complete);
        Assert.Equal(0, Writes);
    }

    [Fact]
    public async Task A_key_rotation_run_without_the_protection_flag_leaves_protected_values_bound_and_lists_them()
    {
        var protectedOptions = EncryptionOptions.FromUtf8(rollbackProtectedPrefixes: ["/registry/secrets/"]);
        var bound = await Protector(protectedOptions).ProtectAsync(Bytes("/registry/secrets/s"), Bytes("secret"), KeyPlace.Creating, CancellationToken.None);
        _etcd.Store.Put("/registry/secrets/s", bound);
        using var newKek = new FakeKeyEncryptionKey("fake:migrate-next");

        var report = await new StorageMigrator(new KV.KVClient(_etcd), Protector(EncryptionOptions.Default), EncryptionOptions.Default, () => newKek.Id, NullLogger<StorageMigrator>.Instance)
            .RunAsync(ByteString.Empty, dryRun: false, batchSize: 100, progress: null, CancellationToken.None);

        Assert.Equal(["\"/registry/secrets/s\""], report.Failed);
        Assert.Equal(0, Writes);
        Assert.Equal(bound, Stored("/registry/secrets/s"));
    }

    private Task<MigrationReport> MigrateAsync(EncryptionOptions options) =>
        new StorageMigrator(new KV.KVClient(_etcd), Protector(options), options, () => _kek.Id, NullLogger<StorageMigrator>.Instance)
            .RunAsync(ByteString.Empty, dryRun: false, batchSize: 100, progress: null, CancellationToken.None);

    private ValueProtector Protector(EncryptionOptions options) => new(options, _keys, _metrics, NullLogger<ValueProtector>.Instance);

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);

    private ByteString Stored(string key) => _etcd.Store.Get(key)!.Value;

    /// <summary>The migrator writes only in txns; a refused or skipped value is never sent one.</summary>
    private int Writes => _etcd.SentTo<TxnRequest>("KV/Txn").Count;
}
