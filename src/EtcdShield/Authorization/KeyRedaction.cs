using System.Security.Cryptography;

namespace EtcdShield.Authorization;

/// <summary>
/// How a key is named in what the proxy writes about a request (audit records, log lines): as itself, or with
/// <c>--audit-hash-keys</c> as the SHA-256 the audit log's <c>key_sha256</c> fields carry, so the two can be
/// matched without either showing the key. What the client is told is not affected: it sent the key.
/// </summary>
internal sealed class KeyRedaction
{
    private KeyRedaction(bool hashesKeys) => HashesKeys = hashesKeys;

    public static KeyRedaction None { get; } = new(false);

    public static KeyRedaction Hashed { get; } = new(true);

    public bool HashesKeys { get; }

    public static KeyRedaction For(bool hashKeys) => hashKeys ? Hashed : None;

    /// <summary>The lower-case hex SHA-256 of <paramref name="key"/>: the audit log's <c>key_sha256</c>.</summary>
    public static string Sha256Hex(ReadOnlySpan<byte> key) => Convert.ToHexStringLower(SHA256.HashData(key));

    /// <summary>A range as a log line or a denial reason names it.</summary>
    public string Name(KeyRange range) => HashesKeys ? range.Describe(key => "sha256:" + Sha256Hex(key)) : range.ToString();
}
