using System.Text;
using EtcdShield.Encryption;

namespace EtcdShield.Tests.Encryption;

public sealed class EncryptionOptionsTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void No_prefixes_means_every_key()
    {
        var options = EncryptionOptions.Default;

        Assert.True(options.AppliesTo(Utf8("/anything")));
        Assert.True(options.AppliesTo([]));
        Assert.False(options.AllowsLegacyPlaintext(Utf8("/anything")));
        Assert.Equal(1536 * 1024, options.MaxValueBytes);
    }

    [Fact]
    public void Prefixes_select_keys_by_byte_prefix()
    {
        var options = EncryptionOptions.FromUtf8(["/registry/secrets/", "/app/"]);

        Assert.True(options.AppliesTo(Utf8("/registry/secrets/default/db")));
        Assert.True(options.AppliesTo(Utf8("/app/")));
        Assert.False(options.AppliesTo(Utf8("/registry/secret")));
        Assert.False(options.AppliesTo(Utf8("/apps")));
    }

    [Fact]
    public void Prefixes_are_copied_so_later_changes_to_the_caller_s_arrays_do_not_leak_in()
    {
        byte[] prefix = Utf8("/a/");
        var options = new EncryptionOptions([prefix]);

        prefix[1] = (byte)'b';

        Assert.True(options.AppliesTo(Utf8("/a/x")));
        Assert.False(options.AppliesTo(Utf8("/b/x")));
    }

    [Fact]
    public void A_legacy_prefix_that_overlaps_no_encrypted_prefix_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => EncryptionOptions.FromUtf8(["/registry/secrets/"], ["/other/"]));

        Assert.Contains("\"/other/\"", ex.Message, StringComparison.Ordinal);
        Assert.NotNull(EncryptionOptions.FromUtf8(["/registry/secrets/"], ["/registry/"]));
        Assert.NotNull(EncryptionOptions.FromUtf8(["/registry/secrets/"], ["/registry/secrets/old/"]));
    }

    [Fact]
    public void The_value_limit_must_leave_room_for_an_envelope()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new EncryptionOptions(maxValueBytes: 10));

        Assert.Contains("--max-request-bytes", ex.Message, StringComparison.Ordinal);
    }
}
