using EtcdShield.Configuration;
using EtcdShield.Hosting;

namespace EtcdShield.Tests.Keys.Pkcs11;

public sealed class KeysCommandLineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-keys-cli").FullName;
    private readonly string _module;
    private readonly string _pin;

    public KeysCommandLineTests()
    {
        _module = Path.Combine(_dir, "module.so");
        _pin = Path.Combine(_dir, "pin");
        File.WriteAllText(_module, "");
        File.WriteAllText(_pin, "1234");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private List<string> Flags(params string[] extra) =>
        ["--pkcs11-module", _module, "--pkcs11-token-label", "etcd", "--pkcs11-pin-file", _pin, "--pkcs11-key-label", "kek", .. extra];

    private static KeysCommandOptions Options(string command, IReadOnlyList<string> args) =>
        KeysCommandLine.ToOptions(command, ShieldCommandLine.ParseFlags(args, ShieldCommands.KeysFlags(command)));

    [Fact]
    public void The_pkcs11_flags_become_settings()
    {
        var options = Options("rotate", Flags());

        Assert.Equal("rotate", options.Subcommand);
        Assert.Equal(_module, options.Pkcs11.ModulePath);
        Assert.Equal("etcd", options.Pkcs11.TokenLabel);
        Assert.Null(options.Pkcs11.Slot);
        Assert.Equal(_pin, options.Pkcs11.PinFile);
        Assert.Equal("kek", options.Pkcs11.KeyLabel);
        Assert.Null(options.Upstream);
    }

    [Fact]
    public void Status_takes_the_upstream_flags_to_scan_etcd()
    {
        var options = Options("status", Flags("--upstream-endpoints", "http://127.0.0.1:2379,http://127.0.0.1:22379"));

        Assert.Equal(2, options.Upstream!.UpstreamEndpoints.Count);
        Assert.Throws<ConfigurationException>(() => Options("status", Flags("--upstream-trusted-ca-file", _pin)));
        Assert.Throws<ConfigurationException>(() => Options("create", Flags("--upstream-endpoints", "http://127.0.0.1:2379")));
    }

    [Theory]
    [InlineData("--pkcs11-key-label", "--pkcs11-key-label is required")]
    [InlineData("--pkcs11-pin-file", "--pkcs11-pin-file is required")]
    [InlineData("--pkcs11-token-label", "exactly one of --pkcs11-token-label or --pkcs11-slot")]
    public void Missing_flags_are_named(string dropped, string message)
    {
        var args = Flags();
        int at = args.IndexOf(dropped);
        args.RemoveRange(at, 2);

        var refused = Assert.Throws<ConfigurationException>(() => Options("create", args));

        Assert.Contains(message, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_token_is_named_once_by_label_or_by_slot()
    {
        var both = Assert.Throws<ConfigurationException>(() => Options("create", Flags("--pkcs11-slot", "3")));
        var badSlot = Assert.Throws<ConfigurationException>(() => Options("create",
            ["--pkcs11-module", _module, "--pkcs11-slot", "three", "--pkcs11-pin-file", _pin, "--pkcs11-key-label", "kek"]));
        var bySlot = Options("create", ["--pkcs11-module", _module, "--pkcs11-slot", "3", "--pkcs11-pin-file", _pin, "--pkcs11-key-label", "kek"]);

        Assert.Contains("exactly one", both.Message, StringComparison.Ordinal);
        Assert.Contains("slot number", badSlot.Message, StringComparison.Ordinal);
        Assert.Equal(3UL, bySlot.Pkcs11.Slot);
        Assert.Equal("slot 3", bySlot.Pkcs11.TokenDescription);
    }

    [Fact]
    public void The_flags_share_the_proxys_names_and_help()
    {
        foreach (var flag in ShieldCommands.KeysFlags("status"))
        {
            Assert.Contains(flag, ServeCommandLine.Flags);
        }

        Assert.Contains("--pkcs11-key-label <LABEL>", ShieldCommands.CommandLine.Help("keys create"), StringComparison.Ordinal);
        Assert.Contains("Exit codes", ShieldCommands.CommandLine.Help("keys"), StringComparison.Ordinal);
    }
}
