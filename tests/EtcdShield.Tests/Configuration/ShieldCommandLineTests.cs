using EtcdShield.Configuration;

namespace EtcdShield.Tests.Configuration;

/// <summary>The one parser: etcd's flag syntax, ETCDSHIELD_* variables, --config-file, their precedence, all errors at once.</summary>
public sealed class ShieldCommandLineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-cli-sources").FullName;
    private readonly string _pem;

    public ShieldCommandLineTests()
    {
        _pem = Path.Combine(_dir, "some.pem");
        File.WriteAllText(_pem, "x");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ParsedCommand Parse(IReadOnlyList<string> args, Dictionary<string, string>? environment = null) =>
        ShieldCommands.CommandLine.Parse(args, environment ?? []);

    private string ConfigFile(string yaml)
    {
        var path = Path.Combine(_dir, $"config-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private string MinimalYaml() => $"""
        listen-client-urls: https://127.0.0.1:23790
        cert-file: {_pem}
        key-file: {_pem}
        trusted-ca-file: {_pem}
        allow-cn: [apiserver, kubeadm]
        no-encryption: true
        """;

    [Fact]
    public void Bare_flags_mean_serve_and_serve_takes_the_same_flags()
    {
        var bare = Parse(["--listen-client-urls", "https://127.0.0.1:1"]);
        var named = Parse(["serve", "--listen-client-urls=https://127.0.0.1:1"]);

        Assert.Equal("serve", bare.Path);
        Assert.Equal("serve", named.Path);
        Assert.Equal(bare.Flags.Many("listen-client-urls"), named.Flags.Many("listen-client-urls"));
    }

    [Fact]
    public void Each_command_is_recognised()
    {
        Assert.Equal("check", Parse(["check", "--no-encryption"]).Path);
        Assert.Equal("migrate", Parse(["migrate", "--dry-run"]).Path);
        Assert.Equal("keys status", Parse(["keys", "status"]).Path);
        Assert.True(Parse(["migrate", "--help"]).HelpRequested);
    }

    [Fact]
    public void Version_is_recognised_alone_and_not_taken_for_a_serve_flag()
    {
        Assert.True(Parse(["--version"]).VersionRequested);
        Assert.False(Parse(["--listen-client-urls", "https://127.0.0.1:2379"]).VersionRequested);
        Assert.False(Parse(["--help"]).VersionRequested);
    }

    [Fact]
    public void List_flags_repeat_and_split_on_commas_and_single_flags_take_the_last()
    {
        var flags = Parse(["--allow-cn", "a,b", "--allow-cn=c", "--log-level", "Debug", "--log-level=Warning"]).Flags;

        Assert.Equal(["a", "b", "c"], flags.Many("allow-cn"));
        Assert.Equal("Warning", flags.Single("log-level"));
        Assert.Empty(flags.Errors);
    }

    [Theory]
    [InlineData(new[] { "--no-encryption" }, true)]
    [InlineData(new[] { "--no-encryption=true" }, true)]
    [InlineData(new[] { "--no-encryption=false" }, false)]
    [InlineData(new[] { "--no-encryption", "--no-encryption=false" }, false)]
    [InlineData(new string[0], false)]
    public void Switches_take_an_optional_boolean_after_equals(string[] args, bool expected)
    {
        var flags = Parse(args).Flags;

        Assert.Equal(expected, flags.Switch("no-encryption"));
        Assert.Empty(flags.Errors);
    }

    [Fact]
    public void A_switch_does_not_swallow_the_next_flag()
    {
        var flags = Parse(["--no-encryption", "--bogus"]).Flags;

        Assert.True(flags.Switch("no-encryption"));
        Assert.Equal(["unknown flag --bogus (see --help)"], flags.Errors);
    }

    [Fact]
    public void Every_error_is_reported_at_once()
    {
        var flags = Parse(["--bogus", "--audit-hash-keys=maybe", "--max-txn-ops", "0", "--listen-client-urls", "http://127.0.0.1:1", "--no-encryption", "--encryption-key-file", _pem, "--cert-file"]).Flags;

        var e = Assert.Throws<ConfigurationException>(() => ServeCommandLine.ToOptions(flags));

        Assert.Contains("unknown flag --bogus (see --help)", e.Errors);
        Assert.Contains("--audit-hash-keys takes true or false, not 'maybe'", e.Errors);
        Assert.Contains("--cert-file needs a value (FILE)", e.Errors);
        Assert.Contains(e.Errors, m => m.StartsWith("--max-txn-ops must be a whole number", StringComparison.Ordinal));
        Assert.Contains(e.Errors, m => m.Contains("must be https", StringComparison.Ordinal));
        Assert.Contains("--key-file is required", e.Errors);
        Assert.Contains("--trusted-ca-file is required", e.Errors);
        Assert.Contains(e.Errors, m => m.StartsWith("no client identity is allowed", StringComparison.Ordinal));
        Assert.Contains("--no-encryption contradicts the key provider flags: choose one", e.Errors);
        Assert.Equal(string.Join(Environment.NewLine, e.Errors), e.Message);
    }

    [Fact]
    public void Every_flag_has_its_environment_variable()
    {
        Dictionary<string, string> environment = new()
        {
            ["ETCDSHIELD_LISTEN_CLIENT_URLS"] = "https://127.0.0.1:1,https://127.0.0.1:2",
            ["ETCDSHIELD_CERT_FILE"] = _pem,
            ["ETCDSHIELD_KEY_FILE"] = _pem,
            ["ETCDSHIELD_TRUSTED_CA_FILE"] = _pem,
            ["ETCDSHIELD_ALLOW_CN"] = "apiserver",
            ["ETCDSHIELD_NO_ENCRYPTION"] = "true",
            ["ETCDSHIELD_MAX_TXN_OPS"] = "64",
            ["PATH"] = "/usr/bin",
        };

        var options = ServeCommandLine.ToOptions(Parse([], environment).Flags);

        Assert.Equal([new Uri("https://127.0.0.1:1"), new Uri("https://127.0.0.1:2")], options.ListenClientUrls);
        Assert.True(options.NoEncryption);
        Assert.Equal(64, options.MaxTxnOps);
        Assert.All(ServeCommandLine.Flags, f => Assert.Equal("ETCDSHIELD_" + f.Name.ToUpperInvariant().Replace('-', '_'), f.EnvironmentVariable));
    }

    [Fact]
    public void An_unknown_variable_is_an_error_but_another_commands_is_ignored()
    {
        Dictionary<string, string> environment = new()
        {
            ["ETCDSHIELD_LISTEN_CLIENT_URL"] = "https://127.0.0.1:1",
            ["ETCDSHIELD_LISTEN_CLIENT_URLS"] = "https://127.0.0.1:1",
            ["ETCDSHIELD_DRY_RUN"] = "true",
        };

        var serve = Parse([], environment).Flags;
        var migrate = Parse(["migrate"], environment).Flags;

        Assert.Equal(["ETCDSHIELD_LISTEN_CLIENT_URL is not the variable of any flag (ETCDSHIELD_<FLAG>, e.g. ETCDSHIELD_LISTEN_CLIENT_URLS)"], serve.Errors);
        Assert.False(serve.Has("dry-run"));
        Assert.False(migrate.Has("listen-client-urls"));
        Assert.True(migrate.Switch("dry-run"));
    }

    [Fact]
    public void A_config_file_alone_gives_the_proxys_options()
    {
        var path = ConfigFile(MinimalYaml() + "\nmax-request-bytes: 2048\nreload-interval: 10s\nencrypt-prefix: \"/a,/b\"\n");

        var options = ServeCommandLine.ToOptions(Parse(["--config-file", path]).Flags);

        Assert.Equal([new Uri("https://127.0.0.1:23790")], options.ListenClientUrls);
        Assert.Equal(["apiserver", "kubeadm"], options.AllowCommonNames);
        Assert.True(options.NoEncryption);
        Assert.Equal(2048, options.MaxRequestBytes);
        Assert.Equal(TimeSpan.FromSeconds(10), options.ReloadInterval);
        Assert.Equal(["/a", "/b"], options.EncryptPrefixes);
    }

    [Fact]
    public void The_config_file_may_be_named_by_its_variable()
    {
        var path = ConfigFile(MinimalYaml());

        var options = ServeCommandLine.ToOptions(Parse([], new() { ["ETCDSHIELD_CONFIG_FILE"] = path }).Flags);

        Assert.Equal(["apiserver", "kubeadm"], options.AllowCommonNames);
    }

    [Fact]
    public void The_command_line_beats_the_environment_which_beats_the_file_and_lists_replace_whole()
    {
        var path = ConfigFile(MinimalYaml() + "\nlog-level: Error\nmax-txn-ops: 10\nmax-concurrent-streams: 7\n");
        Dictionary<string, string> environment = new()
        {
            ["ETCDSHIELD_LOG_LEVEL"] = "Warning",
            ["ETCDSHIELD_MAX_TXN_OPS"] = "20",
            ["ETCDSHIELD_ALLOW_CN"] = "from-env",
        };

        var options = ServeCommandLine.ToOptions(Parse(["--config-file", path, "--log-level", "Debug"], environment).Flags);

        Assert.Equal("Debug", options.LogLevel);
        Assert.Equal(20, options.MaxTxnOps);
        Assert.Equal(7, options.MaxConcurrentStreams);
        Assert.Equal(["from-env"], options.AllowCommonNames);
    }

    [Fact]
    public void The_file_can_turn_a_switch_on_and_the_environment_off()
    {
        var path = ConfigFile(MinimalYaml() + "\naudit-hash-keys: true\n");

        var fromFile = ServeCommandLine.ToOptions(Parse(["--config-file", path]).Flags);
        var overridden = ServeCommandLine.ToOptions(Parse(["--config-file", path], new() { ["ETCDSHIELD_AUDIT_HASH_KEYS"] = "false" }).Flags);

        Assert.True(fromFile.AuditHashKeys);
        Assert.False(overridden.AuditHashKeys);
    }

    [Fact]
    public void Unknown_keys_are_errors_naming_key_and_line_but_another_commands_keys_are_ignored()
    {
        var path = ConfigFile("listen-client-urls: https://127.0.0.1:1\nbatch-size: 10\nlisten-client-url: https://127.0.0.1:1\n");

        var serve = Parse(["--config-file", path]).Flags;
        var migrate = Parse(["migrate", "--config-file", path]).Flags;

        Assert.Equal([$"--config-file {path}: line 3: unknown key 'listen-client-url' (keys are flag names without --, e.g. listen-client-urls)"], serve.Errors);
        Assert.False(serve.Has("batch-size"));
        Assert.Equal("10", migrate.Single("batch-size"));
        Assert.False(migrate.Has("listen-client-urls"));
    }

    [Fact]
    public void Broken_yaml_names_the_file_and_line_without_its_contents()
    {
        var path = ConfigFile("listen-client-urls: https://127.0.0.1:1\ncert-file: [secret-looking-value\n");

        var flags = Parse(["--config-file", path]).Flags;

        var error = Assert.Single(flags.Errors, e => e.StartsWith($"--config-file {path}: line ", StringComparison.Ordinal));
        Assert.DoesNotContain("secret-looking-value", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_list_for_a_single_valued_flag_and_a_missing_file_are_errors()
    {
        var path = ConfigFile("cert-file: [a, b]\n");

        Assert.Equal([$"--config-file {path}: line 1: cert-file takes one value, not a list"], Parse(["--config-file", path]).Flags.Errors);
        Assert.Equal(["--config-file /no/such.yaml: file not found"], Parse(["--config-file", "/no/such.yaml"]).Flags.Errors);
    }

    [Fact]
    public void Help_states_the_precedence_and_the_defaults_from_shield_options()
    {
        var help = ShieldCommands.CommandLine.Help("");
        var defaults = new ShieldOptions();

        Assert.Contains("Precedence per flag: the command line, then the environment, then the config file", help, StringComparison.Ordinal);
        Assert.Contains($"(default {defaults.MaxRequestBytes})", help, StringComparison.Ordinal);
        Assert.Contains("(default 720h)", help, StringComparison.Ordinal);
        Assert.Contains("--config-file <FILE>", help, StringComparison.Ordinal);
        Assert.All(["serve", "check", "migrate"], command => Assert.Contains(ShieldCommandLine.Precedence, ShieldCommands.CommandLine.Help(command).ReplaceLineEndings(" "), StringComparison.Ordinal));
        Assert.All(ServeCommandLine.Flags, f => Assert.Contains("--" + f.Name, ShieldCommands.CommandLine.Help("check"), StringComparison.Ordinal));
    }
}
