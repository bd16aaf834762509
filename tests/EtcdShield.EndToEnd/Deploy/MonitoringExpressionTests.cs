using System.Text.RegularExpressions;
using EtcdShield.EndToEnd.Hosting;
using EtcdShield.EndToEnd.Infrastructure;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// Every expression of deploy/monitoring (each alert rule, each dashboard target and variable) against a real
/// Prometheus scraping the built proxy and etcd (with <c>--metrics=extensive</c>, which the latency comparison
/// needs) under a little load: a put, gets (two serializable), a watch held open, a denial and a value that cannot be
/// decrypted.
/// Each must evaluate without error and name only metrics the two serve, so no panel or alert is silently empty.
/// </summary>
public sealed partial class MonitoringExpressionTests(TestPki pki) : IClassFixture<TestPki>
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ScrapeTimeout = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Every_rule_and_dashboard_expression_evaluates_and_names_only_scraped_metrics()
    {
        var expressions = MonitoringFiles.RuleExpressions().Concat(MonitoringFiles.DashboardExpressions()).ToList();
        var referenced = expressions.SelectMany(e => MonitoringFiles.MetricNames(e.Expression)).ToHashSet(StringComparer.Ordinal);
        await using var etcd = await EtcdProcess.StartAsync(new EtcdOptions { ExtraArguments = ["--metrics=extensive"] });
        var reader = pki.IssueClient("monitoring-reader", "monitoring-reader");
        var policy = Path.Combine(pki.Directory, "monitoring-policy.yaml");
        File.WriteAllText(policy, """
            identities:
              - name: reader
                match: { cn: monitoring-reader }
                keys:
                  - { prefix: /monitoring/, permission: read }
            """);
        // With an audit log, as deployed: its dropped-records counter exists only then.
        await using var shield = ShieldProcess.Start(pki, etcd.ClientUrl, "--policy-file", policy, "--audit-log", Path.Combine(pki.Directory, "monitoring-audit.log"));
        await shield.NextNotificationAsync(StartTimeout);
        await using var prometheus = await PrometheusServer.StartAsync(
            ("etcdshield", new Uri(shield.MetricsUrl).Authority), ("etcd", new Uri(etcd.ClientUrl).Authority));

        using var admin = shield.Channel();
        using var readerChannel = shield.Channel(reader);
        using var direct = GrpcChannels.ToEtcd(etcd);
        var kv = new KV.KVClient(admin);
        await kv.PutAsync(new PutRequest { Key = B("/monitoring/a"), Value = B("v") });
        await kv.RangeAsync(new RangeRequest { Key = B("/monitoring/a") });
        // Serializable, twice: the read cache's miss and (once its watch is up) hit.
        await kv.RangeAsync(new RangeRequest { Key = B("/monitoring/a"), Serializable = true });
        await kv.RangeAsync(new RangeRequest { Key = B("/monitoring/a"), Serializable = true });
        var denied = await Assert.ThrowsAsync<RpcException>(async () =>
            await new KV.KVClient(readerChannel).PutAsync(new PutRequest { Key = B("/monitoring/b"), Value = B("v") }));
        // Planted past the proxy, unencrypted under an encrypted prefix: the proxy refuses to return it.
        await new KV.KVClient(direct).PutAsync(new PutRequest { Key = B("/monitoring/plain"), Value = B("not encrypted") });
        var undecryptable = await Assert.ThrowsAsync<RpcException>(async () =>
            await kv.RangeAsync(new RangeRequest { Key = B("/monitoring/plain") }));
        using var watch = new Watch.WatchClient(admin).Watch();
        await watch.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/monitoring/"), RangeEnd = B("/monitoring0") } });
        Assert.True(await watch.ResponseStream.MoveNext());

        IReadOnlySet<string> scraped = new HashSet<string>();
        try
        {
            scraped = await Eventually.HoldsAsync(prometheus.MetricNamesAsync, names => referenced.IsSubsetOf(names), ScrapeTimeout);
        }
        catch (TimeoutException)
        {
            scraped = await prometheus.MetricNamesAsync();
        }

        var problems = new List<string>();
        foreach (var (name, expression) in expressions)
        {
            var (status, error, _) = await prometheus.QueryAsync(expression);
            if (status != "success")
            {
                problems.Add($"{name}: {expression}\n  does not evaluate: {error}");
            }

            var absent = MonitoringFiles.MetricNames(expression).Where(m => !scraped.Contains(m)).ToList();
            if (absent.Count > 0)
            {
                problems.Add($"{name}: {expression}\n  names metrics nothing serves: {string.Join(", ", absent)}");
            }
        }

        // Prometheus evaluated the loaded rules itself as well (every second); none may have failed.
        var rules = await Eventually.HoldsAsync(prometheus.RulesAsync, r => r.All(rule => rule.Health != "unknown"), ScrapeTimeout);
        problems.AddRange(rules.Where(r => r.Health != "ok").Select(r => $"rule {r.Name} failed in Prometheus: {r.Error}"));

        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        Assert.Equal(StatusCode.DataLoss, undecryptable.StatusCode);
        Assert.True(problems.Count == 0, string.Join('\n', problems));
        Assert.True(expressions.Count >= 20, $"only {expressions.Count} expressions were read from deploy/monitoring");
        // Every metric the proxy serves has its row in the operations guide (a histogram under its base name; the
        // _created series are OpenMetrics' start times of counters and histograms, not metrics of their own).
        var guide = File.ReadAllText(Path.Combine(DeployFiles.RepositoryRoot, "docs", "operations.md"));
        var served = scraped.Where(n => n.StartsWith("etcdshield_", StringComparison.Ordinal) && !n.EndsWith("_created", StringComparison.Ordinal))
            .Select(n => HistogramSeries().Replace(n, "")).Distinct();
        Assert.Equal([], served.Where(n => !guide.Contains($"| `{n}` |", StringComparison.Ordinal)));
        // The load reached Prometheus: the denial and the refused value are counted where the alerts look.
        Assert.Equal(1, await prometheus.ScalarAsync("sum(etcdshield_requests_denied_total{identity=\"reader\"})"));
        Assert.Equal(1, await prometheus.ScalarAsync("sum(etcdshield_encryption_decrypt_failures_total)"));
    }

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [GeneratedRegex("_(bucket|sum|count)$")]
    private static partial Regex HistogramSeries();
}
