using System.Diagnostics.CodeAnalysis;
using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>
/// Finds a KEK that a key ring was not built with, by the id an envelope names. A PKCS#11 token, for instance,
/// can hold a KEK version that another proxy started using after this proxy last listed the token: its values
/// must decrypt here at once, not only after the next listing.
/// </summary>
internal interface IKeyEncryptionKeyResolver
{
    /// <summary>
    /// Returns a KEK for <paramref name="kekId"/> when the id is one this resolver handles. It must not block:
    /// whether the key really exists is for the KEK's own unwrap to find out (and report as
    /// <see cref="UnknownKeyException"/>).
    /// </summary>
    bool TryResolve(string kekId, [NotNullWhen(true)] out IKeyEncryptionKey? kek);
}
