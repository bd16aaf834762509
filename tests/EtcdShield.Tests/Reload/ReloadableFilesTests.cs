using EtcdShield.Configuration;
using EtcdShield.Reload;

namespace EtcdShield.Tests.Reload;

public sealed class ReloadableFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-reload").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Parse(string path)
    {
        var text = File.ReadAllText(path);
        return text.StartsWith("good", StringComparison.Ordinal) ? text : throw new ConfigurationException($"{path} is broken");
    }

    [Fact]
    public void Applies_a_changed_file_and_keeps_the_last_good_version_when_the_new_one_is_broken()
    {
        var path = Path.Combine(_dir, "policy");
        File.WriteAllText(path, "good 1");
        var files = new ReloadableFiles<string>("policy", [path], () => Parse(path));

        Assert.Equal(ReloadOutcome.Unchanged, files.ReloadIfChanged());

        File.WriteAllText(path, "good 2");
        Assert.Equal(ReloadOutcome.Reloaded, files.ReloadIfChanged());
        Assert.Equal("good 2", files.Current);

        File.WriteAllText(path, "broken");
        Assert.Equal(ReloadOutcome.Failed, files.ReloadIfChanged());
        Assert.Equal("good 2", files.Current);
        Assert.Contains("is broken", files.LastError, StringComparison.Ordinal);
        // Reported once, not again every interval while nothing changes.
        Assert.Equal(ReloadOutcome.Unchanged, files.ReloadIfChanged());

        File.WriteAllText(path, "good 3");
        Assert.Equal(ReloadOutcome.Reloaded, files.ReloadIfChanged());
        Assert.Null(files.LastError);
    }

    [Fact]
    public void A_deleted_file_is_a_failed_reload_not_a_crash()
    {
        var path = Path.Combine(_dir, "cert");
        File.WriteAllText(path, "good");
        var files = new ReloadableFiles<string>("cert", [path], () => File.Exists(path) ? Parse(path) : throw new ConfigurationException("missing"));

        File.Delete(path);

        Assert.Equal(ReloadOutcome.Failed, files.ReloadIfChanged());
        Assert.Equal("good", files.Current);
    }

    [Fact]
    public void A_broken_file_at_start_up_is_fatal()
    {
        var path = Path.Combine(_dir, "bad");
        File.WriteAllText(path, "broken");

        Assert.Throws<ConfigurationException>(() => new ReloadableFiles<string>("bad", [path], () => Parse(path)));
    }

    [Fact]
    public void Announces_a_new_version_once_and_never_a_failed_or_unchanged_one()
    {
        var path = Path.Combine(_dir, "announced");
        File.WriteAllText(path, "good 1");
        var files = new ReloadableFiles<string>("policy", [path], () => Parse(path));
        var seen = new List<string>();
        files.Reloaded += () => seen.Add(files.Current);

        File.WriteAllText(path, "broken");
        files.ReloadIfChanged();
        File.WriteAllText(path, "good 2");
        files.ReloadIfChanged();
        files.ReloadIfChanged();

        Assert.Equal(["good 2"], seen);
    }

    [Theory]
    [InlineData(typeof(UnauthorizedAccessException))]
    [InlineData(typeof(IOException))]
    [InlineData(typeof(InvalidOperationException))]
    public void A_loader_that_throws_anything_is_a_failed_reload_that_keeps_the_last_good_version(Type thrown)
    {
        var path = Path.Combine(_dir, "anything");
        File.WriteAllText(path, "good");
        var files = new ReloadableFiles<string>("anything", [path], () => File.ReadAllText(path) == "good"
            ? "good"
            : throw (Exception)Activator.CreateInstance(thrown, "the loader gave up")!);

        File.WriteAllText(path, "throws");

        Assert.Equal(ReloadOutcome.Failed, files.ReloadIfChanged());
        Assert.Equal("good", files.Current);
        Assert.Equal($"{thrown.Name}: the loader gave up", files.LastError);
    }
}
