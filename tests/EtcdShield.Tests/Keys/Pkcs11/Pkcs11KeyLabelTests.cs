using EtcdShield.Encryption;
using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Tests.Keys.Pkcs11;

public sealed class Pkcs11KeyLabelTests
{
    [Theory]
    [InlineData("kek", "pkcs11:kek")]
    [InlineData("kek#2", "pkcs11:kek#2")]
    [InlineData("ops kek", "pkcs11:ops%20kek")]
    [InlineData("100%", "pkcs11:100%25")]
    [InlineData("clé", "pkcs11:cl%C3%A9")]
    [InlineData("tab\there", "pkcs11:tab%09here")]
    public void Ids_are_the_label_with_everything_outside_printable_ascii_and_percent_encoded(string label, string id)
    {
        Assert.Equal(id, Pkcs11KeyLabel.ToKekId(label));
        Assert.True(ValueEnvelope.IsValidKekId(id));
        Assert.True(Pkcs11KeyLabel.TryParseKekId(id, out string parsed));
        Assert.Equal(label, parsed);
    }

    [Theory]
    [InlineData("pkcs11:")]
    [InlineData("file:0011223344556677")]
    [InlineData("pkcs11:%41")] // "A" has exactly one id: "pkcs11:A"
    [InlineData("pkcs11:cl%c3%a9")] // lower-case hex is not the canonical form
    [InlineData("pkcs11:%4")]
    [InlineData("pkcs11:%zz")]
    [InlineData("pkcs11:%FF")] // not UTF-8
    [InlineData("pkcs11:a b")]
    [InlineData(null)]
    public void Only_canonical_ids_name_a_label(string? id)
    {
        Assert.False(Pkcs11KeyLabel.TryParseKekId(id, out _));
    }

    [Theory]
    [InlineData("kek", 1)]
    [InlineData("kek#2", 2)]
    [InlineData("kek#10", 10)]
    [InlineData("kek#2147483647", int.MaxValue)]
    public void Versions_are_the_bare_label_then_label_hash_n(string label, int version)
    {
        Assert.True(Pkcs11KeyLabel.TryGetVersion("kek", label, out int parsed));
        Assert.Equal(version, parsed);
        Assert.Equal(label, Pkcs11KeyLabel.ForVersion("kek", version));
    }

    [Theory]
    [InlineData("kek#1")]
    [InlineData("kek#0")]
    [InlineData("kek#02")]
    [InlineData("kek#")]
    [InlineData("kek#x")]
    [InlineData("kek#-2")]
    [InlineData("kek#2#3")]
    [InlineData("kek2")]
    [InlineData("kekx#2")]
    [InlineData("KEK")]
    [InlineData("kek#99999999999")]
    public void Other_labels_are_not_versions_of_the_family(string label)
    {
        Assert.False(Pkcs11KeyLabel.TryGetVersion("kek", label, out _));
    }

    [Fact]
    public void A_family_label_must_leave_room_for_its_version_suffix_within_the_envelope_limit()
    {
        Assert.Null(Pkcs11KeyLabel.Problem("etcd-kek"));
        Assert.Null(Pkcs11KeyLabel.Problem(new string('a', 255 - 7 - 11)));
        Assert.Contains("too long", Pkcs11KeyLabel.Problem(new string('a', 255 - 7 - 10)), StringComparison.Ordinal);
        Assert.Contains("too long", Pkcs11KeyLabel.Problem(new string('é', 50)), StringComparison.Ordinal); // 300 encoded characters
        Assert.Contains("empty", Pkcs11KeyLabel.Problem(""), StringComparison.Ordinal);
    }
}
