using EtcdShield.EndToEnd.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// deploy/monitoring/etcdshield-rules.yaml as promtool (from Debian's prometheus package) reads it: the rules check,
/// and their unit tests pass and cover every alert.
/// </summary>
public sealed class MonitoringRulesTests
{
    [Fact]
    public async Task Promtool_check_rules_accepts_the_rules_and_refuses_a_broken_copy()
    {
        var checkedRules = await ExternalCommand.RunAsync(MonitoringFiles.Promtool, ["check", "rules", MonitoringFiles.Rules]);
        using var broken = new TemporaryCopy(File.ReadAllText(MonitoringFiles.Rules).Replace("> 0.8", "> > 0.8", StringComparison.Ordinal));
        var checkedBroken = await ExternalCommand.RunAsync(MonitoringFiles.Promtool, ["check", "rules", broken.Path]);

        Assert.True(checkedRules.Succeeded, checkedRules.ToString());
        Assert.Contains($"SUCCESS: {MonitoringFiles.RuleExpressions().Count} rules found", checkedRules.StdOut, StringComparison.Ordinal);
        Assert.False(checkedBroken.Succeeded, checkedBroken.ToString());
    }

    [Fact]
    public async Task Promtool_test_rules_passes()
    {
        var tested = await ExternalCommand.RunAsync(MonitoringFiles.Promtool, ["test", "rules", MonitoringFiles.RulesTests]);

        Assert.True(tested.Succeeded, tested.ToString());
        Assert.Contains("SUCCESS", tested.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_alert_is_expected_to_fire_in_some_rule_test()
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(MonitoringFiles.RulesTests))
        {
            yaml.Load(reader);
        }

        var firing = new HashSet<string>(StringComparer.Ordinal);
        foreach (var test in ((YamlSequenceNode)((YamlMappingNode)yaml.Documents[0].RootNode)["tests"]).Cast<YamlMappingNode>())
        {
            foreach (var check in ((YamlSequenceNode)test["alert_rule_test"]).Cast<YamlMappingNode>())
            {
                if (((YamlSequenceNode)check["exp_alerts"]).Children.Count > 0)
                {
                    firing.Add(((YamlScalarNode)check["alertname"]).Value!);
                }
            }
        }

        var alerts = MonitoringFiles.RuleExpressions().Select(r => r.Name["rule ".Length..]).ToList();

        Assert.NotEmpty(alerts);
        Assert.Equal([], alerts.Where(a => !firing.Contains(a)));
    }

    [Fact]
    public void Every_alert_has_its_row_in_the_operations_guide()
    {
        var guide = File.ReadAllText(Path.Combine(DeployFiles.RepositoryRoot, "docs", "operations.md"));

        Assert.Equal([], MonitoringFiles.RuleExpressions().Select(r => r.Name["rule ".Length..]).Where(a => !guide.Contains($"| `{a}` |", StringComparison.Ordinal)));
    }

    [Fact]
    public void The_metric_names_an_expression_selects_are_found_and_nothing_else()
    {
        var names = MonitoringFiles.MetricNames(
            "histogram_quantile(0.99, sum by (le, method) (rate(etcdshield_request_duration_seconds_bucket{method!~\"Watch/Watch|x\"}[5m])))" +
            " / on (job, instance) group_left () max(up offset 5m) > bool 1e3 or vector(0) and etcd_server_has_leader");

        Assert.Equal(["etcd_server_has_leader", "etcdshield_request_duration_seconds_bucket", "up"], names.Order(StringComparer.Ordinal));
    }

    private sealed class TemporaryCopy : IDisposable
    {
        public TemporaryCopy(string text)
        {
            Path = System.IO.Path.Combine(Directory.CreateTempSubdirectory("etcdshield-rules-").FullName, "rules.yaml");
            File.WriteAllText(Path, text);
        }

        public string Path { get; }

        public void Dispose() => Directory.Delete(System.IO.Path.GetDirectoryName(Path)!, recursive: true);
    }
}
