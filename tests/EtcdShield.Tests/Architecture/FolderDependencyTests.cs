using System.Reflection;
using System.Text.RegularExpressions;

namespace EtcdShield.Tests.Architecture;

/// <summary>
/// The folders of src/EtcdShield form layers: each may use the folders below it, never one above, so a feature
/// can be read and changed without the ones built on it. The graph is computed from the compiled assembly, and
/// docs/architecture.md must draw exactly that graph, so the document cannot go stale.
/// </summary>
public sealed partial class FolderDependencyTests
{
    private static readonly Assembly Assembly = typeof(EtcdShield.Hosting.ServeCommand).Assembly;

    private static readonly SortedSet<(string From, string To)> Edges = FolderGraph.Of(Assembly);

    [Fact]
    public void Folders_depend_on_each_other_without_cycles()
    {
        var graph = Edges
            .GroupBy(e => e.From)
            .ToDictionary(g => g.Key, g => g.Select(e => e.To).ToList());

        var cycle = FindCycle(graph);

        Assert.True(cycle is null, $"folder cycle: {string.Join(" -> ", cycle ?? [])}");
    }

    [Fact]
    public void Architecture_doc_draws_exactly_the_real_folder_graph()
    {
        var doc = File.ReadAllText(RepositoryFile.Find("docs/architecture.md"));
        var block = MermaidGraph().Match(doc);
        Assert.True(block.Success, "docs/architecture.md has no ```mermaid graph block");
        var drawn = new SortedSet<(string, string)>(Edge().Matches(block.Groups["body"].Value)
            .Select(m => (m.Groups["from"].Value, m.Groups["to"].Value)));

        var missing = Edges.Except(drawn).ToList();
        var extra = drawn.Except(Edges).ToList();

        Assert.True(
            missing.Count == 0 && extra.Count == 0,
            $"docs/architecture.md's folder graph is stale; missing: {Format(missing)}; not real: {Format(extra)}. The real graph:\n"
            + string.Join('\n', Edges.Select(e => $"    {e.From} --> {e.To}")));
    }

    [Fact]
    public void Each_folder_has_at_most_one_meter_and_names_it_after_itself()
    {
        var owners = FolderGraph.MeterOwners(Assembly);

        Assert.All(owners, folder =>
        {
            var owner = Assert.Single(folder.Value);
            var name = owner.GetField("MeterName", BindingFlags.Public | BindingFlags.Static)?.GetRawConstantValue();
            Assert.Equal($"EtcdShield.{folder.Key}", name);
        });
        Assert.Equal(["Audit", "Authorization", "Encryption", "Hosting", "Keys", "ReadCache", "Relay", "Reload", "Streams", "Tls", "Watches"], owners.Keys.Order(StringComparer.Ordinal));
    }

    /// <summary>A path that returns to its start, or null; depth-first, in name order so the message is stable.</summary>
    private static List<string>? FindCycle(Dictionary<string, List<string>> graph)
    {
        var done = new HashSet<string>();
        var path = new List<string>();

        List<string>? Visit(string node)
        {
            var onPath = path.IndexOf(node);
            if (onPath >= 0)
            {
                return [.. path[onPath..], node];
            }

            if (!done.Add(node))
            {
                return null;
            }

            path.Add(node);
            foreach (var next in graph.GetValueOrDefault(node, []).Order(StringComparer.Ordinal))
            {
                if (Visit(next) is { } cycle)
                {
                    return cycle;
                }
            }

            path.RemoveAt(path.Count - 1);
            return null;
        }

        return graph.Keys.Order(StringComparer.Ordinal).Select(Visit).FirstOrDefault(c => c is not null);
    }

    private static string Format(IEnumerable<(string From, string To)> edges) =>
        string.Join(", ", edges.Select(e => $"{e.From} --> {e.To}")) is { Length: > 0 } s ? s : "none";

    [GeneratedRegex(@"```mermaid\s*\n\s*graph[^\n]*\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex MermaidGraph();

    [GeneratedRegex(@"^\s*(?<from>\w+)\s*-->\s*(?<to>\w+)\s*$", RegexOptions.Multiline)]
    private static partial Regex Edge();
}
