using EtcdShield.Encryption;
using EtcdShield.EndToEnd.Keys;
using EtcdShield.Keys.Pkcs11;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.EndToEnd.Hostile;

/// <summary>What anyone with token access to a key other than the proxy's KEK can do: wrap a data key of their own under it and seal a value with it.</summary>
internal static class HsmForgery
{
    /// <summary>An envelope for <paramref name="key"/> whose data key <paramref name="label"/> wraps, naming it as its KEK.</summary>
    public static async Task<ByteString> SealAsync(InProcessToken token, string label, string key, string value)
    {
        using var attacker = Pkcs11KeyStore.Open(token.Settings(label), readWrite: false, NullLogger.Instance);
        using var dataKey = await EncryptionKey.CreateAsync(new Pkcs11KeyEncryptionKey(attacker, label), 16, TimeProvider.System, CancellationToken.None);
        return ByteString.CopyFrom(ValueEnvelope.Seal(dataKey, System.Text.Encoding.UTF8.GetBytes(key), System.Text.Encoding.UTF8.GetBytes(value)));
    }
}
