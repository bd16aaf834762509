using System.Globalization;
using System.Text;
using EtcdShield.Encryption;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// KEK ids and versioned labels. The id written into envelopes is "pkcs11:" followed by the key's label (UTF-8),
/// with every byte outside printable ASCII 0x21..0x7E, and '%', percent-encoded. Only the canonical encoding is
/// accepted back, so one label has exactly one id. A KEK family L has version 1 labelled "L" and version N ≥ 2
/// labelled "L#N"; the highest version present in the token wraps new data keys.
/// </summary>
internal static class Pkcs11KeyLabel
{
    public const string IdPrefix = "pkcs11:";
    public const char VersionSeparator = '#';

    public static string ToKekId(string label)
    {
        ArgumentException.ThrowIfNullOrEmpty(label);
        StringBuilder id = new(IdPrefix, IdPrefix.Length + label.Length);
        foreach (byte b in Encoding.UTF8.GetBytes(label))
        {
            if (b is >= 0x21 and <= 0x7E && b != (byte)'%')
            {
                id.Append((char)b);
            }
            else
            {
                id.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return id.ToString();
    }

    /// <summary>The label an id names, if it is a canonical PKCS#11 KEK id.</summary>
    public static bool TryParseKekId(string? kekId, out string label)
    {
        label = "";
        if (kekId is null || !kekId.StartsWith(IdPrefix, StringComparison.Ordinal) || kekId.Length == IdPrefix.Length ||
            !ValueEnvelope.IsValidKekId(kekId))
        {
            return false;
        }

        ReadOnlySpan<char> encoded = kekId.AsSpan(IdPrefix.Length);
        List<byte> bytes = new(encoded.Length);
        for (int i = 0; i < encoded.Length; i++)
        {
            if (encoded[i] != '%')
            {
                bytes.Add((byte)encoded[i]);
                continue;
            }

            if (i + 2 >= encoded.Length ||
                !byte.TryParse(encoded.Slice(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
            {
                return false;
            }

            bytes.Add(b);
            i += 2;
        }

        string decoded;
        try
        {
            decoded = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes.ToArray());
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        // "%41" and "A" would otherwise name the same key under two ids.
        if (!string.Equals(ToKekId(decoded), kekId, StringComparison.Ordinal))
        {
            return false;
        }

        label = decoded;
        return true;
    }

    /// <summary>Why <paramref name="family"/> cannot be a KEK family label, or null when it can.</summary>
    public static string? Problem(string family)
    {
        if (string.IsNullOrEmpty(family))
        {
            return "the key label is empty";
        }

        // Room for the "#N" of later versions, whose ids must still fit the envelope's 255 bytes.
        int idLength = ToKekId(family).Length + 1 + 10;
        return idLength > ValueEnvelope.MaxKekIdLength
            ? $"the key label is too long: its KEK id (\"pkcs11:\" plus the percent-encoded label and a version suffix) must fit in {ValueEnvelope.MaxKekIdLength} characters"
            : null;
    }

    public static string ForVersion(string family, int version)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        return version == 1 ? family : string.Create(CultureInfo.InvariantCulture, $"{family}{VersionSeparator}{version}");
    }

    /// <summary>The version <paramref name="label"/> has in <paramref name="family"/>: "L" is 1, "L#N" is N ≥ 2 (canonical decimal).</summary>
    public static bool TryGetVersion(string family, string label, out int version)
    {
        version = 0;
        if (string.Equals(label, family, StringComparison.Ordinal))
        {
            version = 1;
            return true;
        }

        if (label.Length < family.Length + 2 || !label.StartsWith(family, StringComparison.Ordinal) || label[family.Length] != VersionSeparator)
        {
            return false;
        }

        ReadOnlySpan<char> digits = label.AsSpan(family.Length + 1);
        if (digits[0] == '0' || digits.ContainsAnyExceptInRange('0', '9') ||
            !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int parsed) || parsed < 2)
        {
            return false;
        }

        version = parsed;
        return true;
    }
}
