using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Microbench;

/// <summary>
/// The proxy's real encryption objects, built as the host builds them but with a file KEK from fixed random bytes:
/// a data key manager behind a ValueProtector, so benchmarks measure the same code path a relayed value takes.
/// </summary>
internal sealed class BenchKeys : IDisposable
{
    private readonly FileKeyEncryptionKey _kek;
    private readonly DataKeyManager _manager;

    public BenchKeys()
    {
        _kek = FileKeyEncryptionKey.FromKey(RandomNumberGenerator.GetBytes(FileKeyEncryptionKey.KeySize));
        var meters = new BenchMeterFactory();
        var metrics = new EncryptionMetrics(meters);
        _manager = new DataKeyManager(new KeyRing(_kek), DataKeyOptions.Default, TimeProvider.System, new KeyMetrics(meters), NullLogger<DataKeyManager>.Instance);
        Protector = new ValueProtector(EncryptionOptions.Default, _manager, metrics, NullLogger<ValueProtector>.Instance);

        // A standalone key for the bare envelope benchmarks: no manager, no cache lookup, just seal and open.
        EncryptionKey = EncryptionKey.CreateAsync(_kek, EncryptionKey.MaxWritesCeiling, TimeProvider.System, CancellationToken.None)
            .AsTask().GetAwaiter().GetResult();
    }

    public ValueProtector Protector { get; }

    public EncryptionKey EncryptionKey { get; }

    public void Dispose()
    {
        EncryptionKey.Dispose();
        _manager.Dispose();
        _kek.Dispose();
    }

    private sealed class BenchMeterFactory : IMeterFactory
    {
        public Meter Create(MeterOptions options) => new(options);

        public void Dispose()
        {
        }
    }
}
