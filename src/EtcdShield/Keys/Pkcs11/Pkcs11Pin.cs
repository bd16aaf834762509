using System.Security.Cryptography;
using EtcdShield.Encryption;

namespace EtcdShield.Keys.Pkcs11;

/// <summary>
/// The token's user PIN, read from --pkcs11-pin-file only when a login needs it, into a pinned buffer that the
/// caller zeroes right after C_Login. It is never logged, never put in a message and never kept.
/// </summary>
internal static class Pkcs11Pin
{
    // PINs are short; anything bigger is not a PIN file (and is not read into memory).
    private const int MaxFileBytes = 256;

    /// <summary>Identifies one version of the PIN file, so a PIN the token refused is not tried again until it changes.</summary>
    internal readonly record struct FileStamp(DateTime LastWriteUtc, long Length);

    /// <summary>The PIN without trailing line breaks, in a pinned array: zero it with <see cref="CryptographicOperations.ZeroMemory"/>.</summary>
    /// <exception cref="KeyProviderUnavailableException">The file cannot be read or holds no PIN.</exception>
    public static byte[] Read(string path)
    {
        byte[] contents;
        try
        {
            using FileStream stream = new(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            if (stream.Length > MaxFileBytes)
            {
                throw new KeyProviderUnavailableException(
                    $"--pkcs11-pin-file {path} is {stream.Length} bytes; it must hold only the token's user PIN");
            }

            contents = GC.AllocateArray<byte>((int)stream.Length, pinned: true);
            stream.ReadExactly(contents);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new KeyProviderUnavailableException($"--pkcs11-pin-file {path} cannot be read ({ex.GetType().Name})", ex);
        }

        // Editors and `echo` add a final newline; a PIN never ends with one.
        int length = contents.Length;
        while (length > 0 && contents[length - 1] is (byte)'\n' or (byte)'\r')
        {
            length--;
        }

        if (length == 0)
        {
            CryptographicOperations.ZeroMemory(contents);
            throw new KeyProviderUnavailableException($"--pkcs11-pin-file {path} is empty; it must hold the token's user PIN");
        }

        if (length == contents.Length)
        {
            return contents;
        }

        byte[] pin = GC.AllocateArray<byte>(length, pinned: true);
        contents.AsSpan(0, length).CopyTo(pin);
        CryptographicOperations.ZeroMemory(contents);
        return pin;
    }

    /// <summary>The file's current stamp, or default when it cannot be read.</summary>
    public static FileStamp Stamp(string path)
    {
        try
        {
            FileInfo info = new(path);
            return info.Exists ? new FileStamp(info.LastWriteTimeUtc, info.Length) : default;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return default;
        }
    }

    public static bool IsReadableByOthers(string path) =>
        !OperatingSystem.IsWindows() && File.Exists(path) &&
        (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0;
}
