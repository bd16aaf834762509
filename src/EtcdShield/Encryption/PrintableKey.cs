using System.Text;

namespace EtcdShield.Encryption;

/// <summary>
/// An etcd key rendered for messages and logs: quoted, printable ASCII kept, everything else escaped as \xNN, and
/// long keys cut (etcd keys may be megabytes). Formats only when <see cref="ToString"/> is called, so a log call
/// whose level is disabled costs nothing. With <paramref name="hashed"/> (<c>--audit-hash-keys</c>), the key's
/// SHA-256 as the audit log gives it, never the key.
/// </summary>
internal readonly struct PrintableKey(ReadOnlyMemory<byte> key, bool hashed = false)
{
    private const int MaxShownBytes = 256;

    public override string ToString() => hashed ? "sha256:" + Authorization.KeyRedaction.Sha256Hex(key.Span) : Quote(key.Span);

    public static string Quote(ReadOnlySpan<byte> key)
    {
        ReadOnlySpan<byte> shown = key.Length > MaxShownBytes ? key[..MaxShownBytes] : key;
        var text = new StringBuilder(shown.Length + 16);
        text.Append('"');
        foreach (byte b in shown)
        {
            switch (b)
            {
                case (byte)'"':
                    text.Append("\\\"");
                    break;
                case (byte)'\\':
                    text.Append("\\\\");
                    break;
                case >= 0x20 and <= 0x7E:
                    text.Append((char)b);
                    break;
                default:
                    text.Append("\\x").Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
                    break;
            }
        }

        text.Append('"');
        if (shown.Length < key.Length)
        {
            text.Append("...(").Append(key.Length).Append(" bytes)");
        }

        return text.ToString();
    }
}
