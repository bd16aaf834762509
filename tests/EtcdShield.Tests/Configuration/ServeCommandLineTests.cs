using EtcdShield.Configuration;

namespace EtcdShield.Tests.Configuration;

public sealed class ServeCommandLineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shield-cli").FullName;
    private readonly string _file;

    public ServeCommandLineTests()
    {
        _file = Path.Combine(_dir, "some.pem");
        File.WriteAllText(_file, "x");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private List<string> Minimal(params string[] extra) =>
    [
        "--listen-client-urls", "https://127.0.0.1:23790",
        "--cert-file", _file, "--key-file", _file, "--trusted-ca-file", _file,
        "--allow-cn", "apiserver",
        .. extra,
    ];

    private static ShieldOptions Options(IReadOnlyList<string> args) =>
        ServeCommandLine.ToOptions(ShieldCommandLine.ParseFlags(args, ServeCommandLine.Flags));

    [Fact]
    public void Minimal_flags_with_no_encryption_give_etcd_defaults()
    {
        var options = Options(Minimal("--no-encryption"));

        Assert.True(options.NoEncryption);
        Assert.Equal([new Uri("http://127.0.0.1:2379")], options.UpstreamEndpoints);
        Assert.Equal(options.ListenClientUrls, options.AdvertiseClientUrls);
        Assert.Equal(1_572_864, options.MaxRequestBytes);
        Assert.Equal(128, options.MaxTxnOps);
        Assert.Equal(["apiserver"], options.AllowCommonNames);
        Assert.Equal("text", options.LogFormat);
        Assert.Equal("json", Options(Minimal("--no-encryption", "--log-format", "json")).LogFormat);
    }

    [Theory]
    [InlineData("http://127.0.0.2:23790")]
    [InlineData("http://127.0.0.1:0")]
    public void Refuses_a_metrics_url_that_shares_its_port_with_a_client_url_or_has_none(string metrics)
    {
        var e = Assert.Throws<ConfigurationException>(() => Options(Minimal("--no-encryption", "--metrics-listen-url", metrics)));
        Assert.Contains("--metrics-listen-url", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_to_start_without_a_key_provider_or_no_encryption()
    {
        var e = Assert.Throws<ConfigurationException>(() => Options(Minimal()));
        Assert.Contains("--no-encryption", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_to_start_when_no_identity_is_allowed()
    {
        var args = Minimal("--no-encryption");
        args.RemoveRange(args.IndexOf("--allow-cn"), 2);

        var e = Assert.Throws<ConfigurationException>(() => Options(args));
        Assert.Contains("--allow-cn", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Equals_syntax_repeats_and_comma_lists_all_work()
    {
        var options = Options(Minimal(
            "--no-encryption",
            "--upstream-endpoints=http://127.0.0.1:1,http://127.0.0.1:2",
            "--upstream-endpoints", "http://127.0.0.1:3",
            "--allow-uri", "spiffe://cluster/ns/kube-system/*",
            "--allow-dns=a.example,b.example"));

        Assert.Equal(3, options.UpstreamEndpoints.Count);
        Assert.Equal(["a.example", "b.example"], options.AllowDnsNames);
        Assert.Equal(["spiffe://cluster/ns/kube-system/*"], options.AllowUris);
    }

    [Theory]
    [InlineData("--listen-client-urls", "http://127.0.0.1:1", "must be https")]
    [InlineData("--bogus", "1", "unknown flag --bogus")]
    [InlineData("--max-request-bytes", "ten", "--max-request-bytes must be a whole number")]
    [InlineData("--max-txn-ops", "0", "--max-txn-ops must be a whole number from 1")]
    [InlineData("--log-level", "Chatty", "--log-level")]
    [InlineData("--log-format", "JSON", "--log-format must be text or json, not 'JSON'")]
    [InlineData("--upstream-cert-file", "FILE", "go together")]
    public void Bad_input_is_refused_with_a_message_naming_the_flag(string flag, string value, string expected)
    {
        var args = Minimal("--no-encryption", flag, value == "FILE" ? _file : value);

        var e = Assert.Throws<ConfigurationException>(() => Options(args));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        var args = Minimal("--no-encryption", "--cert-file", Path.Combine(_dir, "nope.pem"));

        var e = Assert.Throws<ConfigurationException>(() => Options(args));
        Assert.Contains("nope.pem: file not found", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Upstream_endpoints_cannot_mix_schemes()
    {
        var args = Minimal("--no-encryption", "--upstream-endpoints", "http://127.0.0.1:1,https://127.0.0.1:2");

        Assert.Throws<ConfigurationException>(() => Options(args));
    }

    [Fact]
    public void A_flag_without_its_value_is_an_error()
    {
        var flags = ShieldCommandLine.ParseFlags(["--cert-file"], ServeCommandLine.Flags);
        Assert.Contains("--cert-file needs a value (FILE)", flags.Errors);
    }

    [Fact]
    public void Help_documents_every_flag()
    {
        var help = ShieldCommands.CommandLine.Help("serve");

        foreach (var flag in ServeCommandLine.Flags)
        {
            Assert.Contains("--" + flag.Name, help, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_policy_file_alone_is_enough_to_admit_clients()
    {
        var args = Minimal("--no-encryption", "--policy-file", _file);
        args.RemoveRange(args.IndexOf("--allow-cn"), 2);

        Assert.Equal(_file, Options(args).PolicyFile);
    }

    [Theory]
    [InlineData("10s", 10)]
    [InlineData("250ms", 0.25)]
    [InlineData("5m", 300)]
    [InlineData("720h", 2_592_000)]
    [InlineData("2d", 172_800)]
    public void Durations_read_like_etcd_and_kubernetes_write_them(string text, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), Options(Minimal("--no-encryption", "--reload-interval", text)).ReloadInterval);

    [Theory]
    [InlineData("--reload-interval", "10")]
    [InlineData("--reload-interval", "1ms")]
    [InlineData("--reload-interval", "soon")]
    [InlineData("--tls-min-version", "1.1")]
    [InlineData("--audit-log-max-size", "0")]
    public void Refuses_bad_tls_reload_and_audit_settings(string flag, string value) =>
        Assert.Throws<ConfigurationException>(() => Options(Minimal("--no-encryption", flag, value)));

    [Fact]
    public void Tls_audit_and_expiry_settings_have_safe_defaults()
    {
        var options = Options(Minimal("--no-encryption"));

        Assert.Equal("1.2", options.TlsMinVersion);
        Assert.Null(options.AuditLog);
        Assert.Equal(TimeSpan.FromDays(30), options.CertExpiryWarning);
        Assert.Equal(TimeSpan.FromSeconds(5), options.ReloadInterval);
    }

    [Fact]
    public void Stream_limits_default_to_a_thousand_and_refuse_zero()
    {
        var defaults = Options(Minimal("--no-encryption"));
        Assert.Equal(1000, defaults.MaxStreamsPerIdentity);
        Assert.Equal(1000, defaults.MaxStreamsPerConnection);

        var set = Options(Minimal("--no-encryption", "--max-streams-per-identity", "5", "--max-streams-per-connection", "2"));
        Assert.Equal(5, set.MaxStreamsPerIdentity);
        Assert.Equal(2, set.MaxStreamsPerConnection);

        var e = Assert.Throws<ConfigurationException>(() => Options(Minimal("--no-encryption", "--max-streams-per-identity", "0")));
        Assert.Contains("--max-streams-per-identity", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cors_is_off_unless_origins_are_given()
    {
        Assert.Empty(Options(Minimal("--no-encryption")).CorsAllowedOrigins);
    }

    [Fact]
    public void Cors_origins_are_taken_as_browsers_send_them_repeated_or_comma_separated()
    {
        var options = Options(Minimal(
            "--no-encryption",
            "--cors-allowed-origins", "https://app.example.com,http://127.0.0.1:3000",
            "--cors-allowed-origins=http://[::1]:8080",
            "--cors-allowed-origins", "*"));

        Assert.Equal(["https://app.example.com", "http://127.0.0.1:3000", "http://[::1]:8080", "*"], options.CorsAllowedOrigins);
    }

    [Fact]
    public void Every_bad_cors_origin_is_named_in_one_error()
    {
        var e = Assert.Throws<ConfigurationException>(() => Options(Minimal(
            "--no-encryption",
            "--cors-allowed-origins", "https://ok.example,https://app.example/path,app.example,https://App.example,https://app.example:443,https://user@app.example,**")));

        Assert.StartsWith("--cors-allowed-origins: ", e.Message, StringComparison.Ordinal);
        foreach (var bad in new[] { "'https://app.example/path'", "'app.example'", "'https://App.example'", "'https://app.example:443'", "'https://user@app.example'", "'**'" })
        {
            Assert.Contains(bad, e.Message, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("'https://ok.example'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tracing_is_off_without_an_otlp_endpoint()
    {
        var options = Options(Minimal("--no-encryption"));

        Assert.Equal((null, "grpc", 0.0), (options.OtlpEndpoint, options.OtlpProtocol, options.TraceSamplingRatio));
    }

    [Fact]
    public void An_otlp_endpoint_with_a_protocol_and_a_ratio_is_read()
    {
        var options = Options(Minimal("--no-encryption", "--otlp-endpoint", "http://127.0.0.1:4318", "--otlp-protocol", "http/protobuf", "--trace-sampling-ratio", "0.25"));

        Assert.Equal((new Uri("http://127.0.0.1:4318"), "http/protobuf", 0.25), (options.OtlpEndpoint, options.OtlpProtocol, options.TraceSamplingRatio));
    }

    [Theory]
    [InlineData("--trace-sampling-ratio must be a number from 0 to 1, not '1.5'", "--otlp-endpoint", "http://127.0.0.1:4317", "--trace-sampling-ratio", "1.5")]
    [InlineData("--trace-sampling-ratio must be a number from 0 to 1, not 'NaN'", "--otlp-endpoint", "http://127.0.0.1:4317", "--trace-sampling-ratio", "NaN")]
    [InlineData("--otlp-protocol must be grpc or http/protobuf, not 'http/json'", "--otlp-endpoint", "http://127.0.0.1:4317", "--otlp-protocol", "http/json")]
    [InlineData("--otlp-protocol and --trace-sampling-ratio go with --otlp-endpoint", "--trace-sampling-ratio", "1")]
    [InlineData("--otlp-endpoint http://127.0.0.1:4317/v1/traces must have no path with --otlp-protocol grpc", "--otlp-endpoint", "http://127.0.0.1:4317/v1/traces")]
    [InlineData("--otlp-endpoint 'collector:4317' is not a URL", "--otlp-endpoint", "collector:4317")]
    public void Refuses_tracing_flags_that_cannot_work(string expected, params string[] flags)
    {
        var e = Assert.Throws<ConfigurationException>(() => Options(Minimal(["--no-encryption", .. flags])));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
