using System.Security.Cryptography;
using System.Text;
using EtcdShield.Encryption;
using EtcdShield.Keys;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace EtcdShield.Tests.Keys;

public sealed class FileKeyEncryptionKeyTests : IDisposable
{
    private static readonly byte[] Key = Convert.FromHexString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");

    private readonly string _directory = Directory.CreateTempSubdirectory("etcdshield-kek-").FullName;
    private readonly FakeLogCollector _logs = new();

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string WriteKeyFile(string contents, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        string path = Path.Combine(_directory, "kek.b64");
        File.WriteAllText(path, contents, new UTF8Encoding(false));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }

        return path;
    }

    [Fact]
    public void Loads_a_base64_key_with_surrounding_whitespace_and_warns_it_is_for_development_only()
    {
        string path = WriteKeyFile("  \n" + Convert.ToBase64String(Key) + "\r\n\n");

        using var kek = FileKeyEncryptionKey.Load(path, new FakeLogger<FileKeyEncryptionKey>(_logs));

        using var expected = FileKeyEncryptionKey.FromKey(Key);
        Assert.Equal(expected.Id, kek.Id);
        var warning = Assert.Single(_logs.GetSnapshot());
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.True(warning.Is<FileKeyEncryptionKey>("DevelopmentOnly"));
        Assert.Contains("DEVELOPMENT ONLY", warning.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(Key), _logs.AllText(), StringComparison.Ordinal);
    }

    [Fact]
    public void Warns_when_the_key_file_is_readable_by_others()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        string path = WriteKeyFile(Convert.ToBase64String(Key), UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        using var kek = FileKeyEncryptionKey.Load(path, new FakeLogger<FileKeyEncryptionKey>(_logs));

        Assert.Contains(_logs.GetSnapshot(), r => r.Is<FileKeyEncryptionKey>("ReadableByOthers") && r.Message.Contains("chmod 600", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("", "is empty")]
    [InlineData(" \n\t ", "is empty")]
    [InlineData("not base64 at all!", "not valid base64")]
    [InlineData("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=AA==", "not valid base64")]
    [InlineData("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", "decodes to 31 bytes")]
    [InlineData("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", "decodes to 33 bytes")]
    public void Rejects_anything_but_one_base64_32_byte_key_with_an_actionable_message(string contents, string expected)
    {
        string path = WriteKeyFile(contents);

        var ex = Assert.Throws<InvalidDataException>(() => FileKeyEncryptionKey.Load(path, new FakeLogger<FileKeyEncryptionKey>(_logs)));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        if (contents.Trim().Length > 0)
        {
            Assert.DoesNotContain(contents.Trim(), ex.Message, StringComparison.Ordinal);
        }

        Assert.Empty(_logs.GetSnapshot());
    }

    [Fact]
    public void Rejects_oversized_files_without_reading_them_as_keys()
    {
        string path = WriteKeyFile(new string('A', 4096));

        var ex = Assert.Throws<InvalidDataException>(() => FileKeyEncryptionKey.Load(path, new FakeLogger<FileKeyEncryptionKey>(_logs)));

        Assert.Contains("4096 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_file_fails_with_the_path()
    {
        string path = Path.Combine(_directory, "missing.b64");

        var ex = Assert.Throws<FileNotFoundException>(() => FileKeyEncryptionKey.Load(path, new FakeLogger<FileKeyEncryptionKey>(_logs)));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Id_is_file_prefix_and_hex_of_the_first_8_bytes_of_the_hmac()
    {
        using var kek = FileKeyEncryptionKey.FromKey(Key);

        byte[] mac = HMACSHA256.HashData(Key, "EtcdShield KEK id v1"u8.ToArray());

        Assert.Equal("file:" + Convert.ToHexStringLower(mac, 0, 8), kek.Id);
        Assert.Equal(21, kek.Id.Length);
    }

    [Fact]
    public async Task Wraps_a_data_key_to_40_bytes_with_rfc_5649_and_unwraps_it()
    {
        using var kek = FileKeyEncryptionKey.FromKey(Key);
        byte[] dek = RandomNumberGenerator.GetBytes(32);

        byte[] wrapped = await kek.WrapAsync(dek, CancellationToken.None);

        Assert.Equal(40, wrapped.Length);
        using (var aes = Aes.Create())
        {
            aes.Key = Key;
            Assert.Equal(aes.EncryptKeyWrapPadded(dek), wrapped);
        }

        Assert.Equal(dek, await kek.UnwrapAsync(wrapped, CancellationToken.None));
    }

    [Fact]
    public async Task Unwrapping_tampered_or_foreign_bytes_throws_key_unwrap_exception()
    {
        using var kek = FileKeyEncryptionKey.FromKey(Key);
        using var other = FileKeyEncryptionKey.FromKey(RandomNumberGenerator.GetBytes(32));
        byte[] wrapped = await kek.WrapAsync(RandomNumberGenerator.GetBytes(32), CancellationToken.None);
        byte[] tampered = (byte[])wrapped.Clone();
        tampered[7] ^= 0x10;

        await Assert.ThrowsAsync<KeyUnwrapException>(() => kek.UnwrapAsync(tampered, CancellationToken.None).AsTask());
        await Assert.ThrowsAsync<KeyUnwrapException>(() => other.UnwrapAsync(wrapped, CancellationToken.None).AsTask());
        await Assert.ThrowsAsync<KeyUnwrapException>(() => kek.UnwrapAsync(wrapped.AsMemory(0, 12), CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task A_disposed_kek_reports_unavailable()
    {
        var kek = FileKeyEncryptionKey.FromKey(Key);
        kek.Dispose();

        await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => kek.WrapAsync(new byte[32], CancellationToken.None).AsTask());
        await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => kek.UnwrapAsync(new byte[40], CancellationToken.None).AsTask());
    }
}
