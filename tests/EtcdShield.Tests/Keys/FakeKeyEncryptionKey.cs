using System.Security.Cryptography;
using EtcdShield.Encryption;
using EtcdShield.Keys;

namespace EtcdShield.Tests.Keys;

/// <summary>
/// A real AES key-wrap KEK under a random key that counts calls, can be switched off, and can hold unwraps at a
/// gate so tests can line up concurrent callers deterministically.
/// </summary>
internal sealed class FakeKeyEncryptionKey : IKeyEncryptionKey, IDisposable
{
    private readonly Aes _aes = Aes.Create();
    private int _wrapCalls;
    private int _unwrapCalls;

    public FakeKeyEncryptionKey(string id = "fake:test")
    {
        Id = id;
        _aes.GenerateKey();
    }

    public string Id { get; }

    public bool Down { get; set; }

    /// <summary>When set, unwraps answer that there is no such key, as an HSM missing a version's label does.</summary>
    public bool Unknown { get; set; }

    /// <summary>When set, unwraps wait for this task before answering.</summary>
    public Task? UnwrapGate { get; set; }

    /// <summary>When set, wraps wait for this task before answering.</summary>
    public Task? WrapGate { get; set; }

    /// <summary>When set, the wrapped bytes returned by wraps are corrupted.</summary>
    public bool CorruptWraps { get; set; }

    public int WrapCalls => Volatile.Read(ref _wrapCalls);

    public int UnwrapCalls => Volatile.Read(ref _unwrapCalls);

    public async ValueTask<byte[]> WrapAsync(ReadOnlyMemory<byte> dek, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _wrapCalls);
        if (WrapGate is { } gate)
        {
            await gate.WaitAsync(cancellationToken);
        }

        if (Down)
        {
            throw new KeyProviderUnavailableException($"key encryption key \"{Id}\" is down");
        }

        byte[] wrapped;
        lock (_aes)
        {
            wrapped = _aes.EncryptKeyWrapPadded(dek.Span);
        }

        if (CorruptWraps)
        {
            wrapped[^1] ^= 1;
        }

        return wrapped;
    }

    public async ValueTask<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrappedDek, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _unwrapCalls);
        if (UnwrapGate is { } gate)
        {
            await gate.WaitAsync(cancellationToken);
        }

        if (Down)
        {
            throw new KeyProviderUnavailableException($"key encryption key \"{Id}\" is down");
        }

        if (Unknown)
        {
            throw new UnknownKeyException(Id);
        }

        try
        {
            lock (_aes)
            {
                return _aes.DecryptKeyWrapPadded(wrappedDek.Span);
            }
        }
        catch (CryptographicException ex)
        {
            throw new KeyUnwrapException($"the wrapped data key is not valid under key encryption key \"{Id}\"", ex);
        }
    }

    public void ResetCounts()
    {
        Interlocked.Exchange(ref _wrapCalls, 0);
        Interlocked.Exchange(ref _unwrapCalls, 0);
    }

    public void Dispose() => _aes.Dispose();
}
