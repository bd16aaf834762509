using EtcdShield.Configuration;

namespace EtcdShield.Tests.Configuration;

/// <summary>
/// Which source set each flag, for the start-up log line: a variable or a config file that switches encryption off
/// or adds an administrator must be visible to an operator reading only the command line.
/// </summary>
public sealed class FlagSourcesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-flag-sources").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Each_flag_is_told_apart_by_the_source_that_won()
    {
        var file = Path.Combine(_dir, "c.yaml");
        File.WriteAllText(file, "log-level: Debug\nallow-cn: [from-file]\nno-encryption: true\n");

        var flags = ShieldCommands.CommandLine.Parse(
            ["--config-file", file, "--log-level", "Warning"],
            new Dictionary<string, string> { ["ETCDSHIELD_ALLOW_CN"] = "intruder", ["ETCDSHIELD_AUDIT_HASH_KEYS"] = "true" }).Flags;

        Assert.Equal(["config-file", "log-level"], flags.SetBy(FlagSource.CommandLine));
        Assert.Equal(["allow-cn", "audit-hash-keys"], flags.SetBy(FlagSource.Environment));
        Assert.Equal(["no-encryption"], flags.SetBy(FlagSource.ConfigFile));
        Assert.Equal(["intruder"], flags.Many("allow-cn"));
    }

    [Fact]
    public void A_switch_set_false_on_the_command_line_wins_over_the_environment_turning_encryption_off()
    {
        var flags = ShieldCommands.CommandLine.Parse(
            ["--no-encryption=false"],
            new Dictionary<string, string> { ["ETCDSHIELD_NO_ENCRYPTION"] = "true" }).Flags;

        Assert.False(flags.Switch("no-encryption"));
        Assert.Equal(["no-encryption"], flags.SetBy(FlagSource.CommandLine));
        Assert.Empty(flags.SetBy(FlagSource.Environment));
    }
}
