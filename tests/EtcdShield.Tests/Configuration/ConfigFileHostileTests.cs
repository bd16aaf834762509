using System.Diagnostics;
using EtcdShield.Configuration;

namespace EtcdShield.Tests.Configuration;

/// <summary>
/// --config-file given something that is not a small YAML file, or YAML written to trick the reader: every case is
/// a clear error naming the file (never its contents), never a hang, a crash or a value taken from the wrong key.
/// </summary>
public sealed class ConfigFileHostileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-config-hostile").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static FlagValues Parse(string path) => ShieldCommands.CommandLine.Parse(["--config-file", path], new Dictionary<string, string>()).Flags;

    private string Write(string name, string yaml)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, yaml);
        return path;
    }

    [Fact]
    public void A_directory_is_not_a_config_file()
    {
        Assert.Equal([$"--config-file {_dir}: a directory, not a file"], Parse(_dir).Errors);
    }

    [Fact]
    public void A_device_that_never_ends_is_refused_not_read_into_memory()
    {
        Assert.Equal([$"--config-file /dev/zero: larger than {ConfigFile.MaxBytes / 1024} KiB, not a configuration"], Parse("/dev/zero").Errors);
    }

    [Fact]
    public async Task A_pipe_is_read_as_a_file_is_as_for_process_substitution()
    {
        // --config-file <(render-config): no length to trust, so the bounded read is what reads it.
        var fifo = Path.Combine(_dir, "fifo");
        using (var mkfifo = Process.Start("mkfifo", fifo))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        var writer = Task.Run(() => File.WriteAllText(fifo, "log-level: Debug\n"));
        var flags = await Task.Run(() => Parse(fifo)).WaitAsync(TimeSpan.FromSeconds(30));
        await writer;

        Assert.Empty(flags.Errors);
        Assert.Equal("Debug", flags.Single("log-level"));
    }

    [Fact]
    public void A_huge_file_is_refused_by_its_size()
    {
        var path = Path.Combine(_dir, "huge.yaml");
        using (var file = File.Create(path))
        {
            file.SetLength(64L * 1024 * 1024);
        }

        var error = Assert.Single(Parse(path).Errors);

        Assert.StartsWith($"--config-file {path}: larger than ", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_duplicate_key_is_an_error_not_a_silent_choice()
    {
        // Which of two values wins is a trap: an operator reading the top of the file sees the first one.
        var path = Write("dup.yaml", "no-encryption: false\nlog-level: Debug\nno-encryption: true\n");

        var flags = Parse(path);

        var error = Assert.Single(flags.Errors);
        Assert.Contains("no-encryption", error, StringComparison.Ordinal);
        Assert.StartsWith($"--config-file {path}: line ", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Keys_differing_in_case_or_separator_are_unknown_keys()
    {
        var path = Write("case.yaml", "LISTEN-CLIENT-URLS: https://127.0.0.1:1\nlisten_client_urls: https://127.0.0.1:2\nlisten-client: https://127.0.0.1:3\n");

        var flags = Parse(path);

        Assert.Equal(3, flags.Errors.Count);
        Assert.All(flags.Errors, e => Assert.Contains("unknown key", e, StringComparison.Ordinal));
        Assert.False(flags.Has("listen-client-urls"));
    }

    [Fact]
    public void Nested_maps_and_lists_of_lists_are_errors()
    {
        var path = Write("nested.yaml", "allow-cn:\n  admin: true\nencrypt-prefix: [[a], b]\n");

        var flags = Parse(path);

        Assert.Equal(2, flags.Errors.Count);
        Assert.False(flags.Has("allow-cn"));
        Assert.False(flags.Has("encrypt-prefix"));
    }

    [Fact]
    public async Task An_alias_bomb_is_refused_quickly()
    {
        // The billion laughs: each level a list of nine aliases of the one before. Only scalars or lists of
        // scalars are values, so nothing may expand it.
        var yaml = new System.Text.StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i < 12; i++)
        {
            yaml.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 9))}]\n");
        }

        yaml.Append("? *a11\n: x\n");
        var path = Write("bomb.yaml", yaml.ToString());

        var flags = await Task.Run(() => Parse(path)).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.NotEmpty(flags.Errors);
    }

    [Fact]
    public void An_alias_of_a_scalar_is_the_scalar()
    {
        var path = Write("alias.yaml", "advertise-client-urls: &u https://127.0.0.1:1\nlisten-client-urls: *u\n");

        var flags = Parse(path);

        Assert.Empty(flags.Errors);
        Assert.Equal(["https://127.0.0.1:1"], flags.Many("listen-client-urls"));
    }
}
