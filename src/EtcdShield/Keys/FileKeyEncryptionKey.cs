using System.Buffers.Text;
using System.Security.Cryptography;
using EtcdShield.Encryption;

namespace EtcdShield.Keys;

/// <summary>
/// DEVELOPMENT ONLY: a KEK read from a file (<c>--encryption-key-file</c>) holding a base64-encoded 32-byte key.
/// The key sits in plaintext on disk next to whatever can read the proxy's files, so production uses an HSM or KMS.
/// Wrapping is AES key wrap with padding (RFC 5649), which is deterministic and authenticated: 40 bytes for a DEK.
/// </summary>
internal sealed partial class FileKeyEncryptionKey : IKeyEncryptionKey, IDisposable
{
    public const string IdPrefix = "file:";
    public const int KeySize = 32;

    // A base64 32-byte key is 44 characters; anything much larger is not a key file.
    private const int MaxFileBytes = 1024;

    private readonly Aes _aes;
    private bool _disposed;

    private FileKeyEncryptionKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize)
        {
            throw new ArgumentException($"A file KEK is {KeySize} bytes.", nameof(key));
        }

        Id = DeriveId(key);
        _aes = Aes.Create();
        _aes.SetKey(key);
    }

    private static ReadOnlySpan<byte> IdLabel => "EtcdShield KEK id v1"u8;

    /// <summary>"file:" + hex of the first 8 bytes of HMAC-SHA256(KEK, "EtcdShield KEK id v1").</summary>
    public string Id { get; }

    /// <summary>Loads the key file and logs that this provider is for development only.</summary>
    /// <exception cref="InvalidDataException">The file does not hold exactly one base64-encoded 32-byte key.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static FileKeyEncryptionKey Load(string path, ILogger logger)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(logger);

        byte[] contents = ReadBounded(path);
        byte[] key = GC.AllocateArray<byte>(Base64.GetMaxDecodedFromUtf8Length(contents.Length), pinned: true);
        try
        {
            ReadOnlySpan<byte> text = contents.AsSpan().Trim(" \t\r\n\f\v"u8);
            if (text.IsEmpty)
            {
                throw new InvalidDataException(
                    $"Encryption key file '{path}' is empty. Create one with: head -c 32 /dev/urandom | base64 > '{path}'");
            }

            var status = Base64.DecodeFromUtf8(text, key, out _, out int written);
            if (status != System.Buffers.OperationStatus.Done)
            {
                throw new InvalidDataException(
                    $"Encryption key file '{path}' is not valid base64. It must hold one base64-encoded 32-byte key, e.g. from: head -c 32 /dev/urandom | base64");
            }

            if (written != KeySize)
            {
                throw new InvalidDataException(
                    $"Encryption key file '{path}' decodes to {written} bytes; it must decode to exactly {KeySize} (an AES-256 key).");
            }

            FileKeyEncryptionKey kek = new(key.AsSpan(0, KeySize));
            Log.DevelopmentOnly(logger, path, kek.Id);
            if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0)
            {
                Log.ReadableByOthers(logger, path);
            }

            return kek;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(contents);
        }
    }

    /// <summary>For tests and the published test vector; production goes through <see cref="Load"/>.</summary>
    internal static FileKeyEncryptionKey FromKey(ReadOnlySpan<byte> key) => new(key);

    public ValueTask<byte[]> WrapAsync(ReadOnlyMemory<byte> dek, CancellationToken cancellationToken)
    {
        if (dek.IsEmpty)
        {
            throw new ArgumentException("There is no data key to wrap.", nameof(dek));
        }

        lock (_aes)
        {
            if (_disposed)
            {
                return ValueTask.FromException<byte[]>(Disposed());
            }

            return ValueTask.FromResult(_aes.EncryptKeyWrapPadded(dek.Span));
        }
    }

    public ValueTask<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrappedDek, CancellationToken cancellationToken)
    {
        // RFC 5649 output is at least two 8-byte blocks; other lengths cannot come from this KEK.
        if (wrappedDek.Length < 16 || wrappedDek.Length % 8 != 0)
        {
            return ValueTask.FromException<byte[]>(NotWrappedByThis(null));
        }

        lock (_aes)
        {
            if (_disposed)
            {
                return ValueTask.FromException<byte[]>(Disposed());
            }

            try
            {
                return ValueTask.FromResult(_aes.DecryptKeyWrapPadded(wrappedDek.Span));
            }
            catch (CryptographicException ex)
            {
                return ValueTask.FromException<byte[]>(NotWrappedByThis(ex));
            }
        }
    }

    public void Dispose()
    {
        lock (_aes)
        {
            _disposed = true;
            _aes.Dispose();
        }
    }

    private static string DeriveId(ReadOnlySpan<byte> key)
    {
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(key, IdLabel, mac);
        return IdPrefix + Convert.ToHexStringLower(mac[..8]);
    }

    private static byte[] ReadBounded(string path)
    {
        using FileStream stream = new(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        if (stream.Length > MaxFileBytes)
        {
            throw new InvalidDataException(
                $"Encryption key file '{path}' is {stream.Length} bytes; a key file holds one base64-encoded 32-byte key (44 characters).");
        }

        byte[] contents = new byte[(int)stream.Length];
        stream.ReadExactly(contents);
        return contents;
    }

    private KeyUnwrapException NotWrappedByThis(Exception? inner) =>
        new($"the wrapped data key is not valid under key encryption key \"{Id}\"", inner);

    private KeyProviderUnavailableException Disposed() =>
        new($"key encryption key \"{Id}\" has been disposed");

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.DevelopmentOnly, EventName = nameof(EventIds.DevelopmentOnly), Level = LogLevel.Warning,
            Message = "Using encryption key file {Path} as key encryption key {KekId}. This is for DEVELOPMENT ONLY: the key sits unprotected on disk. Use an HSM (PKCS#11) or a KMS in production.")]
        public static partial void DevelopmentOnly(ILogger logger, string path, string kekId);

        [LoggerMessage(EventId = EventIds.ReadableByOthers, EventName = nameof(EventIds.ReadableByOthers), Level = LogLevel.Warning,
            Message = "Encryption key file {Path} is readable by group or others; restrict it with: chmod 600")]
        public static partial void ReadableByOthers(ILogger logger, string path);
    }
}
