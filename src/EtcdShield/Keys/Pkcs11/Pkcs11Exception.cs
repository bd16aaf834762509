namespace EtcdShield.Keys.Pkcs11;

/// <summary>A Cryptoki function returned something other than CKR_OK; <see cref="Pkcs11SessionPool"/> classifies it.</summary>
internal sealed class Pkcs11Exception(string method, CKR rv) : Exception($"{method} returned {Pkcs11Errors.Name(rv)}")
{
    /// <summary>The Cryptoki function, such as C_UnwrapKey.</summary>
    public string Method { get; } = method;

    public CKR RV { get; } = rv;
}
