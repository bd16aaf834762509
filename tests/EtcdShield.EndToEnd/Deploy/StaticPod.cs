using YamlDotNet.RepresentationModel;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>A pod manifest as kubelet reads it (anchors and aliases resolved), with the parts the deploy tests use.</summary>
internal sealed class StaticPod
{
    private StaticPod(YamlMappingNode root) => Root = root;

    public YamlMappingNode Root { get; }

    public YamlMappingNode Spec => (YamlMappingNode)Root["spec"];

    /// <summary>Init containers first, in order, then the containers: the order kubelet starts them in.</summary>
    public IReadOnlyList<YamlMappingNode> InitContainers => Sequence(Spec, "initContainers");

    public IReadOnlyList<YamlMappingNode> Containers => Sequence(Spec, "containers");

    public IReadOnlyList<YamlMappingNode> Volumes => Sequence(Spec, "volumes");

    public static StaticPod Load(string path)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(path))
        {
            stream.Load(reader);
        }

        return new StaticPod((YamlMappingNode)stream.Documents.Single().RootNode);
    }

    public YamlMappingNode Container(string name) =>
        InitContainers.Concat(Containers).Single(c => Scalar(c, "name") == name);

    public YamlMappingNode Volume(string name) => Volumes.Single(v => Scalar(v, "name") == name);

    /// <summary>command followed by args, as the container runtime executes them.</summary>
    public static IReadOnlyList<string> CommandLine(YamlMappingNode container) =>
        [.. Strings(container, "command"), .. Strings(container, "args")];

    public static IReadOnlyDictionary<string, string> Environment(YamlMappingNode container) =>
        Sequence(container, "env").ToDictionary(e => Scalar(e, "name")!, e => Scalar(e, "value") ?? "", StringComparer.Ordinal);

    /// <summary>Each mount path and the volume mounted there.</summary>
    public static IReadOnlyDictionary<string, string> Mounts(YamlMappingNode container) =>
        Sequence(container, "volumeMounts").ToDictionary(m => Scalar(m, "mountPath")!, m => Scalar(m, "name")!, StringComparer.Ordinal);

    public static string? Scalar(YamlNode node, params string[] path)
    {
        foreach (var key in path)
        {
            if (node is not YamlMappingNode mapping || !mapping.Children.TryGetValue(new YamlScalarNode(key), out var child))
            {
                return null;
            }

            node = child;
        }

        return (node as YamlScalarNode)?.Value;
    }

    public static YamlNode? Node(YamlNode node, params string[] path)
    {
        foreach (var key in path)
        {
            if (node is not YamlMappingNode mapping || !mapping.Children.TryGetValue(new YamlScalarNode(key), out var child))
            {
                return null;
            }

            node = child;
        }

        return node;
    }

    public static IReadOnlyList<YamlMappingNode> Sequence(YamlNode node, string key) =>
        Node(node, key) is YamlSequenceNode items ? items.Children.Cast<YamlMappingNode>().ToList() : [];

    public static IReadOnlyList<string> Strings(YamlNode node, string key) =>
        Node(node, key) is YamlSequenceNode items ? items.Children.Select(i => ((YamlScalarNode)i).Value!).ToList() : [];
}
