using EtcdShield.Encryption;
using EtcdShield.Keys;
using EtcdShield.Migration;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Tests.Encryption;
using EtcdShield.Tests.Keys;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Tests.Migration;

/// <summary>What migrate may re-seal: only values that authenticate, and plaintext only inside its own window.</summary>
public sealed class StorageMigratorTests : IDisposable
{
    private readonly FakeKeyEncryptionKey _kek = new("fake:migrate");
    private readonly MetricRecorder _metrics = new();
    private readonly DataKeyManager _keys;
    private readonly InMemoryKv _etcd = new();

    public StorageMigratorTests()
    {
        _keys = new DataKeyManager(new KeyRing(_kek), DataKeyOptions.Default, new ManualTimeProvider(), _metrics.KeyMetrics, new RecordingLogger<DataKeyManager>());
    }

    public void Dispose()
    {
        _keys.Dispose();
        _kek.Dispose();
        _metrics.Dispose();
    }

    [Fact]
    public async Task Plaintext_outside_the_window_is_refused_listed_and_never_written()
    {
        _etcd.Stored["/app/planted"] = Bytes("attacker-chosen");

        var report = await MigrateAsync(EncryptionOptions.FromUtf8(["/app/", "/legacy/"], ["/legacy/"]));

        Assert.Equal(["\"/app/planted\""], report.Refused);
        Assert.Equal(0, report.PlaintextEncrypted);
        Assert.False(report.Complete);
        Assert.Equal(0, _etcd.Writes);
        Assert.Equal("attacker-chosen", _etcd.Stored["/app/planted"].ToStringUtf8());
        Assert.Contains("refused (plaintext outside a --legacy-plaintext-prefix window, left as they are): 1", report.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plaintext_inside_the_window_is_sealed()
    {
        _etcd.Stored["/legacy/config"] = Bytes("from-before");
        var options = EncryptionOptions.FromUtf8(legacyPlaintextPrefixes: ["/legacy/"]);

        var report = await MigrateAsync(options);

        Assert.True(report.Complete);
        Assert.Equal(1, report.PlaintextEncrypted);
        Assert.True(ValueEnvelope.HasEnvelopePrefix(_etcd.Stored["/legacy/config"].Span));
        Assert.Equal("from-before", (await Protector(EncryptionOptions.Default).UnprotectAsync(Bytes("/legacy/config"), _etcd.Stored["/legacy/config"], CancellationToken.None)).ToStringUtf8());
    }

    [Fact]
    public async Task An_envelope_under_the_current_kek_moved_to_another_key_is_reported_not_counted_current()
    {
        var sealedForA = await Protector(EncryptionOptions.Default).ProtectAsync(Bytes("/app/a"), Bytes("secret"), CancellationToken.None);
        _etcd.Stored["/app/a"] = sealedForA;
        _etcd.Stored["/app/b"] = sealedForA;

        var report = await MigrateAsync(EncryptionOptions.Default);

        Assert.Equal(["\"/app/b\""], report.Failed);
        Assert.Equal(1, report.AlreadyCurrent);
        Assert.False(report.Complete);
        Assert.Equal(0, _etcd.Writes);
    }

    private Task<MigrationReport> MigrateAsync(EncryptionOptions options) =>
        new StorageMigrator(new KV.KVClient(_etcd), Protector(options), options, () => _kek.Id, new RecordingLogger<StorageMigrator>())
            .RunAsync(ByteString.Empty, dryRun: false, batchSize: 100, progress: null, CancellationToken.None);

    private ValueProtector Protector(EncryptionOptions options) => new(options, _keys, _metrics.Metrics, new RecordingLogger<ValueProtector>());

    private static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);

    /// <summary>Just enough of etcd's KV for a migration: one page of every key, and guarded puts that succeed.</summary>
    private sealed class InMemoryKv : CallInvoker
    {
        public SortedDictionary<string, ByteString> Stored { get; } = new(StringComparer.Ordinal);

        public int Writes { get; private set; }

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        {
            object response = request switch
            {
                RangeRequest => Range(),
                TxnRequest txn => Txn(txn),
                _ => throw new NotSupportedException(method.FullName),
            };
            return new AsyncUnaryCall<TResponse>(
                Task.FromResult((TResponse)response), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
        }

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();

        private RangeResponse Range()
        {
            var response = new RangeResponse { Header = new ResponseHeader { Revision = 7 }, Count = Stored.Count };
            response.Kvs.AddRange(Stored.Select(p => new KeyValue { Key = Bytes(p.Key), Value = p.Value, ModRevision = 7 }));
            return response;
        }

        private TxnResponse Txn(TxnRequest txn)
        {
            var put = txn.Success.Single().RequestPut;
            Stored[put.Key.ToStringUtf8()] = put.Value;
            Writes++;
            return new TxnResponse { Succeeded = true };
        }
    }
}
