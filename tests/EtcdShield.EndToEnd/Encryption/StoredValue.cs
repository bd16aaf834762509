using System.Text;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Encryption;

/// <summary>Assertions on what etcd stores and on how the proxy refuses what it cannot open.</summary>
internal static class StoredValue
{
    /// <summary>"ESH" and version 1: the start of every envelope (docs/value-format.md).</summary>
    public static readonly byte[] EnvelopeMagic = [0x45, 0x53, 0x48, 0x01];

    /// <summary>The file KEK's envelope overhead: an envelope is exactly this much longer than its plaintext.</summary>
    public const int FileKekOverhead = 113;

    /// <summary>The stored bytes are an envelope of <paramref name="plaintext"/>: the magic, the length of the
    /// plaintext plus the overhead, and the plaintext nowhere inside.</summary>
    public static void AssertSealed(ByteString? stored, string plaintext)
    {
        Assert.NotNull(stored);
        var bytes = stored.ToByteArray();
        var plain = Encoding.UTF8.GetBytes(plaintext);
        Assert.True(bytes.AsSpan().StartsWith(EnvelopeMagic), $"stored value does not start with the envelope magic: {Convert.ToHexString(bytes.AsSpan(0, Math.Min(8, bytes.Length)))}");
        Assert.Equal(plain.Length + FileKekOverhead, bytes.Length);
        if (plain.Length > 0)
        {
            Assert.False(bytes.AsSpan().IndexOf(plain) >= 0, "the stored envelope contains the plaintext");
        }
    }

    /// <summary>A refusal the way docs/value-format.md specifies it: DATA_LOSS naming the key, never the value.</summary>
    public static void AssertDataLoss(RpcException refusal, string key, params string[] secrets)
    {
        Assert.Equal(StatusCode.DataLoss, refusal.StatusCode);
        Assert.StartsWith("etcdshield: cannot decrypt value of key \"" + key + "\"", refusal.Status.Detail, StringComparison.Ordinal);
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, refusal.Status.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, refusal.Message, StringComparison.Ordinal);
            foreach (var trailer in refusal.Trailers)
            {
                Assert.DoesNotContain(secret, trailer.IsBinary ? Encoding.UTF8.GetString(trailer.ValueBytes) : trailer.Value, StringComparison.Ordinal);
            }
        }
    }

    public static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);
}
