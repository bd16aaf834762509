using EtcdShield.Configuration;
using EtcdShield.Keys.KmsV2;
using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Tests.Keys.Pkcs11;

/// <summary>Which KEK ids an envelope may name: the configured family, retired labels, and nothing else.</summary>
public sealed class Pkcs11TrustedLabelsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-retired").FullName;
    private readonly string _file;

    public Pkcs11TrustedLabelsTests()
    {
        _file = Path.Combine(_dir, "some.file");
        File.WriteAllText(_file, "x");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("kek", true)]
    [InlineData("kek#2", true)]
    [InlineData("kek#17", true)]
    [InlineData("old kek", true)]
    [InlineData("kek#1", false)]
    [InlineData("kek#02", false)]
    [InlineData("kek2", false)]
    [InlineData("old kek#2", false)]
    [InlineData("app-key", false)]
    [InlineData("KEK", false)]
    public void Only_versions_of_the_family_and_retired_labels_may_unwrap(string label, bool trusted)
    {
        var settings = new Pkcs11Settings { ModulePath = "/m.so", PinFile = "/pin", KeyLabel = "kek", RetiredKeyLabels = ["old kek"] };

        Assert.Equal(trusted, settings.MayUnwrap(label));
    }

    [Fact]
    public void Retired_labels_come_from_the_repeatable_flag()
    {
        var options = ServeCommandLine.UpstreamAndKeys(Parse(Pkcs11("--pkcs11-retired-key-label", "old", "--pkcs11-retired-key-label=older")));

        Assert.Equal(["old", "older"], options.Pkcs11RetiredKeyLabels);
        Assert.Equal(["old", "older"], Pkcs11Settings.FromOptions(options).RetiredKeyLabels);
    }

    [Theory]
    [InlineData(false, "is a version of --pkcs11-key-label kek")]
    [InlineData(true, "its KEK id must fit in 255 characters")]
    public void Unusable_retired_labels_are_refused_with_the_flag_named(bool tooLong, string reason)
    {
        var label = tooLong ? new string('x', 249) : "kek#3";
        var options = ServeCommandLine.UpstreamAndKeys(Parse(Pkcs11("--pkcs11-retired-key-label", label)));

        var e = Assert.Throws<ConfigurationException>(() => Pkcs11Settings.FromOptions(options));

        Assert.Contains("--pkcs11-retired-key-label", e.Message, StringComparison.Ordinal);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Retired_labels_need_the_pkcs11_provider()
    {
        var e = Assert.Throws<ConfigurationException>(() => ServeCommandLine.UpstreamAndKeys(Parse(["--encryption-key-file", _file, "--pkcs11-retired-key-label", "old"])));

        Assert.Contains("--pkcs11-retired-key-label goes with --pkcs11-module", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pkcs11:kek")]
    [InlineData("file:0011223344556677")]
    [InlineData("kms")]
    public void A_kms_plugin_resolves_no_id_of_another_kind(string kekId)
    {
        using var plugin = new KmsPlugin("unix:///nonexistent/kms.sock");

        Assert.False(plugin.TryResolve(kekId, out _));
        Assert.True(plugin.TryResolve("kms:projects/p/keys/k", out _));
    }

    private List<string> Pkcs11(params string[] extra) =>
    [
        "--pkcs11-module", _file, "--pkcs11-token-label", "etcd", "--pkcs11-pin-file", _file, "--pkcs11-key-label", "kek", .. extra,
    ];

    private static FlagValues Parse(IReadOnlyList<string> args) => ShieldCommandLine.ParseFlags(args, ServeCommandLine.Flags);
}
