using System.Globalization;
using Google.Protobuf;

namespace EtcdShield.LoadGen.Load;

/// <summary>
/// The keys one value size works on: a fixed set under its own prefix, written once before anything reads them, so
/// every get finds a value of the size under test (and, behind the encrypting proxy, an envelope to open).
/// </summary>
internal sealed class KeySpace
{
    private readonly ByteString[] _keys;

    public KeySpace(int valueSize, int count)
    {
        ValueSize = valueSize;
        _keys = new ByteString[count];
        for (var i = 0; i < count; i++)
        {
            // Kubernetes-like key shape and length (~40 bytes), so per-key work in the AAD is realistic.
            _keys[i] = ByteString.CopyFromUtf8(string.Create(CultureInfo.InvariantCulture, $"/registry/bench/v{valueSize}/key-{i:D8}"));
        }

        // Random bytes, like ciphertext or compressed objects: nothing on the path can take a shortcut on them.
        var bytes = new byte[valueSize];
        Random.Shared.NextBytes(bytes);
        Value = UnsafeByteOperations.UnsafeWrap(bytes);
    }

    public int ValueSize { get; }

    public int Count => _keys.Length;

    public ByteString Value { get; }

    public ByteString this[int index] => _keys[index];
}
