using System.Security.Cryptography;
using EtcdShield.Authorization;
using EtcdShield.Encryption;

namespace EtcdShield.Tests.Authorization;

public sealed class KeyRedactionTests
{
    private static string Sha(string key) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)));

    [Fact]
    public void Without_hashing_ranges_are_named_as_everywhere_else()
    {
        var range = KeyRange.Prefix("/tenant/"u8);

        Assert.Equal(range.ToString(), KeyRedaction.None.Name(range));
        Assert.Equal("prefix \"/tenant/\"", KeyRedaction.None.Name(range));
    }

    [Fact]
    public void Hashing_names_every_key_of_a_range_by_the_sha256_the_audit_log_writes()
    {
        Assert.Equal($"key {Sha("/a")}", KeyRedaction.Hashed.Name(KeyRange.SingleKey("/a"u8)));
        Assert.Equal($"prefix {Sha("/t/")}", KeyRedaction.Hashed.Name(KeyRange.Prefix("/t/"u8)));
        Assert.Equal($"range [{Sha("/a")}, {Sha("/c")})", KeyRedaction.Hashed.Name(KeyRange.FromEtcd("/a"u8, "/c"u8)));
        Assert.Equal($"keys from {Sha("/a")} on", KeyRedaction.Hashed.Name(KeyRange.FromEtcd("/a"u8, "\0"u8)));
        Assert.Equal("every key", KeyRedaction.Hashed.Name(KeyRange.All));
        Assert.Equal(Sha("/a")["sha256:".Length..], KeyRedaction.Sha256Hex("/a"u8));
    }

    [Fact]
    public void A_hashed_printable_key_never_shows_the_key()
    {
        var key = "/secret/tenant-name"u8.ToArray();

        Assert.Equal("\"/secret/tenant-name\"", new PrintableKey(key).ToString());
        Assert.Equal(Sha("/secret/tenant-name"), new PrintableKey(key, hashed: true).ToString());
    }
}
