using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Fuzz;

/// <summary>
/// The proxy's real value protection with a file KEK derived from a fixed label, so that envelopes sealed while
/// writing the seeds open in the fuzzing process: the fuzzer then mutates envelopes that get past the KEK lookup.
/// </summary>
internal sealed class FuzzKeys
{
    public FuzzKeys()
    {
        var kek = FileKeyEncryptionKey.FromKey(SHA256.HashData("EtcdShield fuzzing KEK, not a secret"u8));
        var meters = new NoMeters();
        var metrics = new EncryptionMetrics(meters);
        var manager = new DataKeyManager(new KeyRing(kek), DataKeyOptions.Default, TimeProvider.System, new KeyMetrics(meters), NullLogger<DataKeyManager>.Instance);
        Protector = new ValueProtector(EncryptionOptions.Default, manager, metrics, NullLogger<ValueProtector>.Instance);
    }

    public ValueProtector Protector { get; }

    private sealed class NoMeters : IMeterFactory
    {
        private readonly List<Meter> _meters = [];

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options);
            _meters.Add(meter);
            return meter;
        }

        public void Dispose() => _meters.ForEach(m => m.Dispose());
    }
}
