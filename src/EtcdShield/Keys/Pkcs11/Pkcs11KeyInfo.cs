namespace EtcdShield.Keys.Pkcs11;

/// <summary>The attributes of a secret key in the token that decide whether it may serve as a KEK (never its value).</summary>
internal sealed record Pkcs11KeyInfo(
    ulong Handle,
    string Label,
    CKK? KeyType,
    ulong ValueLength,
    bool Sensitive,
    bool Extractable,
    bool Wrap,
    bool Unwrap,
    bool Private)
{
    public const int RequiredKeyBytes = 32;

    /// <summary>Why this key must not be used as a KEK, or null when it may.</summary>
    public string? Problem()
    {
        if (KeyType != CKK.CKK_AES)
        {
            return $"key \"{Label}\" is not an AES key (CKA_KEY_TYPE is {KeyType?.ToString() ?? "unreadable"})";
        }

        if (ValueLength != RequiredKeyBytes)
        {
            return $"key \"{Label}\" is AES-{ValueLength * 8}; the key-encryption key must be AES-256 (CKA_VALUE_LEN 32)";
        }

        if (!Sensitive)
        {
            // A non-sensitive key can be read out of the token in plaintext, which defeats the point of an HSM.
            return $"key \"{Label}\" is not sensitive (CKA_SENSITIVE is false), so its value could be read out of the token; " +
                "create the key-encryption key with CKA_SENSITIVE=true (pkcs11-tool --sensitive, or etcdshield keys create)";
        }

        if (!Wrap || !Unwrap)
        {
            return $"key \"{Label}\" may not {(Wrap ? "unwrap" : "wrap")} keys (CKA_{(Wrap ? "UNWRAP" : "WRAP")} is false); " +
                "the key-encryption key needs CKA_WRAP and CKA_UNWRAP (pkcs11-tool --usage-wrap)";
        }

        return null;
    }

    /// <summary>Acceptable but weaker than it should be; logged as warnings.</summary>
    public IEnumerable<string> Weaknesses()
    {
        if (Extractable)
        {
            yield return $"key \"{Label}\" is extractable (CKA_EXTRACTABLE is true): anyone with the PIN can export it wrapped under another key";
        }

        if (!Private)
        {
            yield return $"key \"{Label}\" is a public object (CKA_PRIVATE is false): the token may let sessions use it without the PIN";
        }
    }
}
