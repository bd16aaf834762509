using EtcdShield.Encryption;
using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Tests.Keys.Pkcs11;

public sealed class Pkcs11PinTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-pin").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("123456", "123456")]
    [InlineData("123456\n", "123456")]
    [InlineData("123456\r\n", "123456")]
    [InlineData("123456\n\n", "123456")]
    [InlineData(" pass phrase ", " pass phrase ")]
    public void Reads_the_pin_without_trailing_line_breaks(string contents, string pin)
    {
        string path = Write(contents);

        byte[] read = Pkcs11Pin.Read(path);

        Assert.Equal(System.Text.Encoding.UTF8.GetBytes(pin), read);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("\n", "empty")]
    public void Refuses_a_file_without_a_pin(string contents, string problem)
    {
        string path = Write(contents);

        var refused = Assert.Throws<KeyProviderUnavailableException>(() => Pkcs11Pin.Read(path));

        Assert.Contains(problem, refused.Message, StringComparison.Ordinal);
        Assert.Contains("--pkcs11-pin-file", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_a_file_too_big_to_be_a_pin_without_echoing_it()
    {
        string path = Write(new string('7', 300));

        var refused = Assert.Throws<KeyProviderUnavailableException>(() => Pkcs11Pin.Read(path));

        Assert.Contains("300 bytes", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("7777", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        string path = Path.Combine(_dir, "absent");

        var refused = Assert.Throws<KeyProviderUnavailableException>(() => Pkcs11Pin.Read(path));

        Assert.Contains(path, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_stamp_changes_when_the_file_is_rewritten_so_a_refused_pin_is_retried_only_then()
    {
        string path = Write("1111");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(-5));
        var refused = Pkcs11Pin.Stamp(path);

        File.WriteAllText(path, "2222");

        Assert.NotEqual(default, refused);
        Assert.NotEqual(refused, Pkcs11Pin.Stamp(path));
        Assert.Equal(default, Pkcs11Pin.Stamp(Path.Combine(_dir, "absent")));
    }

    private string Write(string contents)
    {
        string path = Path.Combine(_dir, Guid.NewGuid().ToString("N"));
        File.WriteAllText(path, contents);
        return path;
    }
}
