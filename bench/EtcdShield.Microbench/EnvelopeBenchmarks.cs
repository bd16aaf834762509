using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using EtcdShield.Encryption;
using Google.Protobuf;

namespace EtcdShield.Microbench;

/// <summary>
/// Envelope v1 against raw AES-256-GCM on the same plaintext. The raw baseline is the least any AES-GCM value
/// encryption does: allocate the output, encrypt with a 12-byte nonce, authenticate the etcd key as AAD. The
/// envelope adds its header copy, the header in the AAD, nonce reservation and the cipher pool; Protect/Unprotect
/// add the ValueProtector around it (prefix check, key lookup, ByteString wrapping), which is what the relay calls.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public class EnvelopeBenchmarks
{
    private readonly byte[] _etcdKey = "/registry/secrets/default/bench-secret"u8.ToArray();
    private readonly byte[] _nonce = new byte[12];
    private BenchKeys _keys = null!;
    private AesGcm _raw = null!;
    private byte[] _plaintext = null!;
    private byte[] _rawSealed = null!;
    private byte[] _envelope = null!;
    private ByteString _keyBytes = null!;
    private ByteString _plaintextBytes = null!;
    private ByteString _envelopeBytes = null!;

    [ParamsSource(nameof(Sizes))]
    public int Size { get; set; }

    public static IEnumerable<int> Sizes => MicrobenchMode.Quick ? [1024] : [256, 1024, 16384];

    [GlobalSetup]
    public void Setup()
    {
        _keys = new BenchKeys();
        _raw = new AesGcm(RandomNumberGenerator.GetBytes(32), AesGcm.TagByteSizes.MaxSize);
        _plaintext = RandomNumberGenerator.GetBytes(Size);
        _rawSealed = RawEncrypt();
        _envelope = ValueEnvelope.Seal(_keys.EncryptionKey, _etcdKey, _plaintext);
        _keyBytes = ByteString.CopyFrom(_etcdKey);
        _plaintextBytes = ByteString.CopyFrom(_plaintext);

        // The first protect creates the manager's data key (a KEK call); do it here, outside the measurement.
        _envelopeBytes = _keys.Protector.ProtectAsync(_keyBytes, _plaintextBytes, null, default).AsTask().GetAwaiter().GetResult();
        if (!_keys.Protector.UnprotectAsync(_keyBytes, _envelopeBytes, default, default).AsTask().GetAwaiter().GetResult().Span.SequenceEqual(_plaintext))
        {
            throw new InvalidOperationException("the protector does not round-trip");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _raw.Dispose();
        _keys.Dispose();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("encrypt")]
    public byte[] RawEncrypt()
    {
        var output = new byte[_plaintext.Length + 16];
        _raw.Encrypt(_nonce, _plaintext, output.AsSpan(0, _plaintext.Length), output.AsSpan(_plaintext.Length), _etcdKey);
        return output;
    }

    [Benchmark, BenchmarkCategory("encrypt")]
    public byte[] Seal() => ValueEnvelope.Seal(_keys.EncryptionKey, _etcdKey, _plaintext);

    [Benchmark, BenchmarkCategory("encrypt")]
    public ValueTask<ByteString> Protect() => _keys.Protector.ProtectAsync(_keyBytes, _plaintextBytes, null, default);

    [Benchmark(Baseline = true), BenchmarkCategory("decrypt")]
    public byte[] RawDecrypt()
    {
        var output = new byte[_rawSealed.Length - 16];
        _raw.Decrypt(_nonce, _rawSealed.AsSpan(0, output.Length), _rawSealed.AsSpan(output.Length), output, _etcdKey);
        return output;
    }

    [Benchmark, BenchmarkCategory("decrypt")]
    public byte[] Open() => ValueEnvelope.Open(_keys.EncryptionKey.DataKey, _etcdKey, _envelope);

    [Benchmark, BenchmarkCategory("decrypt")]
    public ValueTask<ByteString> Unprotect() => _keys.Protector.UnprotectAsync(_keyBytes, _envelopeBytes, default, default);
}
