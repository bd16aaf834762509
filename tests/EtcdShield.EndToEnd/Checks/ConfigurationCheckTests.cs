using EtcdShield.Configuration;
using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Checks;

/// <summary>
/// <c>etcdshield check</c> against a real etcd (plain and TLS) and the KMS test plugin: a configuration the proxy
/// would serve with passes, and each way of breaking it fails with exit 1 and the line that says what to fix.
/// </summary>
public sealed class ConfigurationCheckTests : IAsyncLifetime, IDisposable
{
    private readonly TestPki _pki = new();
    private TestKmsPlugin _kms = null!;
    private EtcdProcess _etcd = null!;

    public async Task InitializeAsync()
    {
        _kms = await TestKmsPlugin.StartAsync();
        _etcd = await SharedEtcd.GetAsync();
    }

    public async Task DisposeAsync() => await _kms.DisposeAsync();

    public void Dispose() => _pki.Dispose();

    private string WritePolicy()
    {
        var path = Path.Combine(_pki.Directory, "policy.yaml");
        File.WriteAllText(path, "identities:\n  - name: kube-apiserver\n    match:\n      cn: kube-apiserver-etcd-client\n    methods: [Lease, KV/Compact]\n    keys:\n      - prefix: /registry/\n        permission: readwrite\n  - name: backup\n    match:\n      cn: etcd-backup\n    methods: [Maintenance/Snapshot]\n");
        return path;
    }

    private ShieldOptions Good() => new()
    {
        ListenClientUrls = [new Uri("https://127.0.0.1:23790")],
        AdvertiseClientUrls = [new Uri("https://localhost:23790")],
        CertFile = _pki.ServerCert.CertFile,
        KeyFile = _pki.ServerCert.KeyFile,
        TrustedCaFile = _pki.CaFile,
        UpstreamEndpoints = [new Uri(_etcd.ClientUrl)],
        PolicyFile = WritePolicy(),
        KmsPluginEndpoint = _kms.Endpoint,
    };

    [Fact]
    public async Task A_good_configuration_passes_with_etcds_version_members_and_the_plugins_key()
    {
        var run = await CheckRun.OfAsync(Good());

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Empty(run.Failures);
        Assert.Contains(run.Lines, l => l.StartsWith($"ok   etcd: etcd 3.", StringComparison.Ordinal) && l.Contains($"at {_etcd.ClientUrl}/ answers", StringComparison.Ordinal) && l.Contains(", 1 member(s)", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith($"ok   kms: plugin at {_kms.Endpoint} answers Status: version v2", StringComparison.Ordinal) && l.EndsWith($"key id '{_kms.CurrentKeyId}'", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith("ok   kms-wrap: wrapped and unwrapped a random data key with kms:", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith("ok   policy: ", StringComparison.Ordinal) && l.EndsWith(" parses: 2 identities (kube-apiserver, backup)", StringComparison.Ordinal));
        // The test etcd gives clients its own URL: exactly the way around the proxy the check is there to see.
        Assert.Contains(run.Lines, l => l.StartsWith("warn etcd-member: etcd0 ", StringComparison.Ordinal) && l.Contains($"gives clients {_etcd.ClientUrl}, not one of --advertise-client-urls", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_member_that_gives_out_the_proxys_url_is_fronted_by_it()
    {
        var run = await CheckRun.OfAsync(Good() with { AdvertiseClientUrls = [new Uri(_etcd.ClientUrl)] });

        Assert.Contains(run.Lines, l => l.StartsWith("ok   etcd-member: etcd0 ", StringComparison.Ordinal) && l.EndsWith($"(fronted by this proxy): client URLs {_etcd.ClientUrl}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_expired_serving_certificate_fails()
    {
        var now = DateTimeOffset.UtcNow;
        var expired = _pki.IssueServer("expired", notBefore: now.AddDays(-60), notAfter: now.AddDays(-2));

        var run = await CheckRun.OfAsync(Good() with { CertFile = expired.CertFile, KeyFile = expired.KeyFile });

        Assert.Equal(1, run.ExitCode);
        Assert.Matches(@"^FAIL expiry: serving certificate 'CN=localhost' expired at \S+Z; renew it$", Assert.Single(run.Failures));
    }

    [Fact]
    public async Task A_serving_key_of_another_certificate_fails()
    {
        var other = _pki.IssueServer("other");

        var run = await CheckRun.OfAsync(Good() with { KeyFile = other.KeyFile });

        Assert.Equal(1, run.ExitCode);
        Assert.Contains(run.Failures, l => l.StartsWith($"FAIL serving-cert: cannot load --cert-file {_pki.ServerCert.CertFile} with --key-file {other.KeyFile}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_missing_policy_file_fails()
    {
        var missing = Path.Combine(_pki.Directory, "missing-policy.yaml");

        var run = await CheckRun.OfAsync(Good() with { PolicyFile = missing });

        Assert.Equal(1, run.ExitCode);
        var failures = run.Failures.ToList();
        Assert.Equal(2, failures.Count);
        Assert.Equal($"FAIL file: --policy-file {missing} cannot be read (no such file); fix the path or give this user read access", failures[0]);
        Assert.StartsWith($"FAIL policy: cannot read --policy-file {missing}", failures[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Etcd_down_fails_and_the_other_checks_still_run()
    {
        var run = await CheckRun.OfAsync(Good() with { UpstreamEndpoints = [new Uri($"http://127.0.0.1:{FreePort.Allocate()}")] });

        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("FAIL etcd: etcd at --upstream-endpoints http://127.0.0.1:", Assert.Single(run.Failures), StringComparison.Ordinal);
        Assert.Contains(run.Lines, l => l.StartsWith("ok   kms-wrap: ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_kms_plugin_that_fails_fails_the_check()
    {
        _kms.Down = true;

        var run = await CheckRun.OfAsync(Good());

        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith($"FAIL kms: KMS plugin {_kms.Endpoint} does not answer Status (Unavailable", Assert.Single(run.Failures), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Etcd_over_tls_answers_through_the_upstream_tls_flags()
    {
        await using var etcd = await EtcdProcess.StartAsync(new EtcdOptions { ClientTls = EtcdClientTls.From(_pki) });
        var upstream = _pki.IssueClient("shield-upstream", "shield-upstream");
        var options = Good() with
        {
            UpstreamEndpoints = [new Uri(etcd.ClientUrl)],
            UpstreamCertFile = upstream.CertFile,
            UpstreamKeyFile = upstream.KeyFile,
            UpstreamTrustedCaFile = _pki.CaFile,
        };

        var run = await CheckRun.OfAsync(options);
        var withoutClientCert = await CheckRun.OfAsync(options with { UpstreamCertFile = null, UpstreamKeyFile = null });

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains(run.Lines, l => l.StartsWith("ok   etcd: etcd 3.", StringComparison.Ordinal) && l.Contains($"at {etcd.ClientUrl}/ answers", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith("ok   upstream-cert: 'CN=shield-upstream' in --upstream-cert-file matches --upstream-key-file", StringComparison.Ordinal));
        Assert.Equal(1, withoutClientCert.ExitCode);
        Assert.StartsWith("FAIL etcd: etcd at --upstream-endpoints https://127.0.0.1:", Assert.Single(withoutClientCert.Failures), StringComparison.Ordinal);
    }
}
