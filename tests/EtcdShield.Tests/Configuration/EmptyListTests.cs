using EtcdShield.Configuration;

namespace EtcdShield.Tests.Configuration;

/// <summary>
/// A list flag given but empty ("", ",", a quoted empty string in the file): for --listen-client-urls that left
/// the proxy with no client listener of its own, and Kestrel with no endpoint falls back to plain
/// http://localhost:5000, so it must be refused like an absent flag; an empty --upstream-endpoints became etcd's
/// default, plain TCP to 127.0.0.1:2379, in place of the socket the operator meant.
/// </summary>
public sealed class EmptyListTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-empty-list").FullName;
    private readonly string _file;

    public EmptyListTests()
    {
        _file = Path.Combine(_dir, "some.pem");
        File.WriteAllText(_file, "x");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ConfigurationException Refusal(IReadOnlyList<string> args, Dictionary<string, string>? environment = null) =>
        Assert.Throws<ConfigurationException>(() => ServeCommandLine.ToOptions(ShieldCommands.CommandLine.Parse(
            [.. args, "--cert-file", _file, "--key-file", _file, "--trusted-ca-file", _file, "--allow-cn", "a", "--no-encryption"],
            environment ?? []).Flags));

    [Fact]
    public void An_empty_listen_client_urls_on_the_command_line_is_refused()
    {
        Assert.Contains(Refusal(["--listen-client-urls", ""]).Errors, e => e.StartsWith("--listen-client-urls", StringComparison.Ordinal));
    }

    [Fact]
    public void Only_commas_in_the_environment_is_refused()
    {
        Assert.Contains(Refusal([], new() { ["ETCDSHIELD_LISTEN_CLIENT_URLS"] = "," }).Errors, e => e.StartsWith("--listen-client-urls", StringComparison.Ordinal));
    }

    [Fact]
    public void A_quoted_empty_string_in_the_config_file_is_refused()
    {
        var config = Path.Combine(_dir, "c.yaml");
        File.WriteAllText(config, "listen-client-urls: \"\"\n");

        Assert.Contains(Refusal(["--config-file", config]).Errors, e => e.StartsWith("--listen-client-urls", StringComparison.Ordinal));
    }

    [Fact]
    public void An_empty_upstream_endpoints_is_refused_not_replaced_by_the_default()
    {
        Assert.Contains(
            Refusal(["--listen-client-urls", "https://127.0.0.1:1"], new() { ["ETCDSHIELD_UPSTREAM_ENDPOINTS"] = " , " }).Errors,
            e => e.StartsWith("--upstream-endpoints", StringComparison.Ordinal));
    }
}
