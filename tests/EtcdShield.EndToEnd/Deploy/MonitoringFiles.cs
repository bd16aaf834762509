using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// deploy/monitoring as the repository has it (alert rules, their promtool tests, the Grafana dashboard), the
/// Prometheus binaries deploy/install-prerequisites.sh unpacks into .tools/, and the PromQL expressions of both files.
/// </summary>
internal static partial class MonitoringFiles
{
    public static string Rules => Path.Combine(DeployFiles.RepositoryRoot, "deploy", "monitoring", "etcdshield-rules.yaml");

    public static string RulesTests => Path.Combine(DeployFiles.RepositoryRoot, "deploy", "monitoring", "etcdshield-rules.test.yaml");

    public static string Dashboard => Path.Combine(DeployFiles.RepositoryRoot, "deploy", "monitoring", "etcdshield-dashboard.json");

    public static string Promtool => Tool("promtool");

    public static string Prometheus => Tool("prometheus");

    /// <summary>Grafana's variables, as the test's Prometheus has them: its job names, every instance, a fixed interval.</summary>
    private static readonly (string Variable, string Value)[] DashboardVariables =
    [
        ("$__rate_interval", "1m"),
        ("$__interval", "1m"),
        ("$__range", "5m"),
        ("$etcd_job", "etcd"),
        ("$job", "etcdshield"),
        ("$instance", ".+"),
    ];

    private static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "inf", "nan", "Inf", "NaN", "atan2", "start", "end",
    };

    /// <summary>Every alert and recording rule of the rules file: its name and expression.</summary>
    public static IReadOnlyList<(string Name, string Expression)> RuleExpressions()
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(Rules))
        {
            yaml.Load(reader);
        }

        var rules = new List<(string, string)>();
        var groups = (YamlSequenceNode)((YamlMappingNode)yaml.Documents[0].RootNode)["groups"];
        foreach (YamlMappingNode group in groups.Cast<YamlMappingNode>())
        {
            foreach (YamlMappingNode rule in ((YamlSequenceNode)group["rules"]).Cast<YamlMappingNode>())
            {
                var name = rule.Children.TryGetValue("alert", out var alert) ? alert : rule["record"];
                rules.Add(($"rule {name}", ((YamlScalarNode)rule["expr"]).Value!));
            }
        }

        return rules;
    }

    /// <summary>Every panel target's expression (rows' panels too), with Grafana's variables filled in, and each variable's query.</summary>
    public static IReadOnlyList<(string Name, string Expression)> DashboardExpressions()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Dashboard));
        var expressions = new List<(string, string)>();
        foreach (var panel in Panels(dashboard.RootElement))
        {
            if (!panel.TryGetProperty("targets", out var targets))
            {
                continue;
            }

            foreach (var target in targets.EnumerateArray())
            {
                if (target.TryGetProperty("expr", out var expr))
                {
                    expressions.Add(($"panel \"{panel.GetProperty("title").GetString()}\" target {target.GetProperty("refId").GetString()}", Fill(expr.GetString()!)));
                }
            }
        }

        foreach (var variable in dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            // label_values(METRIC, LABEL) is Grafana's, not PromQL: its metric selector is what Prometheus is asked.
            if (variable.GetProperty("type").GetString() == "query" &&
                LabelValues().Match(QueryOf(variable)) is { Success: true } match)
            {
                expressions.Add(($"variable {variable.GetProperty("name").GetString()}", Fill(match.Groups["selector"].Value)));
            }
        }

        return expressions;
    }

    /// <summary>
    /// The metric names an expression selects: identifiers outside strings, label matchers, ranges and label lists,
    /// that are neither functions, aggregations nor keywords.
    /// </summary>
    public static IReadOnlySet<string> MetricNames(string expression)
    {
        var text = Strings().Replace(expression, "\"\"");
        text = Braces().Replace(text, "{}");
        text = Brackets().Replace(text, "[]");
        text = LabelLists().Replace(text, " ");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match identifier in Identifiers().Matches(text))
        {
            var name = identifier.Groups["name"].Value;
            if (!identifier.Groups["call"].Success && !Keywords.Contains(name))
            {
                names.Add(name);
            }
        }

        return names;
    }

    private static string QueryOf(JsonElement variable) =>
        variable.GetProperty("query") is { ValueKind: JsonValueKind.Object } query ? query.GetProperty("query").GetString()! : variable.GetProperty("query").GetString()!;

    private static string Fill(string expression)
    {
        foreach (var (variable, value) in DashboardVariables)
        {
            expression = expression.Replace(variable, value, StringComparison.Ordinal);
        }

        return expression;
    }

    private static IEnumerable<JsonElement> Panels(JsonElement holder)
    {
        if (!holder.TryGetProperty("panels", out var panels))
        {
            yield break;
        }

        foreach (var panel in panels.EnumerateArray())
        {
            yield return panel;
            foreach (var inner in Panels(panel))
            {
                yield return inner;
            }
        }
    }

    private static string Tool(string name)
    {
        var path = Path.Combine(DeployFiles.RepositoryRoot, ".tools", "prometheus", "usr", "bin", name);
        return File.Exists(path)
            ? path
            : throw new InvalidOperationException($"{path} is missing: run deploy/install-prerequisites.sh (tests/run.sh does), which unpacks Debian's prometheus package there.");
    }

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")]
    private static partial Regex Strings();

    [GeneratedRegex(@"\{[^{}]*\}")]
    private static partial Regex Braces();

    [GeneratedRegex(@"\[[^\[\]]*\]")]
    private static partial Regex Brackets();

    [GeneratedRegex(@"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")]
    private static partial Regex LabelLists();

    [GeneratedRegex(@"(?<![\w:.])(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?<call>\s*\()?")]
    private static partial Regex Identifiers();

    [GeneratedRegex(@"^\s*label_values\(\s*(?<selector>[^,]+?)\s*,\s*\w+\s*\)\s*$")]
    private static partial Regex LabelValues();
}
