using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EtcdShield.Configuration;

/// <summary>
/// <c>--config-file</c>: YAML whose keys are the flag names without the leading <c>--</c>, as in etcd's config
/// file. Values are scalars (a list flag may hold a comma-separated string) or sequences of scalars. Errors name
/// the file, the line and the key, never the file's contents.
/// </summary>
internal static class ConfigFile
{
    /// <summary>One key of the file: its scalar values (one for a scalar, each item of a sequence) and where it is.</summary>
    internal sealed record Entry(string Key, IReadOnlyList<string> Values, bool IsSequence, long Line);

    public static IReadOnlyList<Entry> Read(string path, List<string> errors)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            errors.Add($"--config-file {path}: cannot be read ({e.GetType().Name})");
            return [];
        }

        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            // YamlDotNet's messages describe the syntax only; the offending text is not repeated.
            errors.Add($"--config-file {path}: line {e.Start.Line}: not valid YAML ({e.Message})");
            return [];
        }

        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" })
        {
            return [];
        }

        if (stream.Documents.Count > 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            errors.Add($"--config-file {path}: line {stream.Documents[0].RootNode.Start.Line}: must be one mapping of flag names to values");
            return [];
        }

        var entries = new List<Entry>();
        foreach (var (keyNode, valueNode) in root.Children)
        {
            var line = keyNode.Start.Line;
            if (keyNode is not YamlScalarNode { Value: { Length: > 0 } key })
            {
                errors.Add($"--config-file {path}: line {line}: keys must be flag names");
                continue;
            }

            switch (valueNode)
            {
                case YamlScalarNode scalar when IsNull(scalar):
                    // "key:" with nothing after it sets nothing, as an absent key.
                    break;
                case YamlScalarNode scalar:
                    entries.Add(new Entry(key, [scalar.Value!], IsSequence: false, line));
                    break;
                case YamlSequenceNode sequence when sequence.Children.All(c => c is YamlScalarNode s && !IsNull(s)):
                    entries.Add(new Entry(key, [.. sequence.Children.Cast<YamlScalarNode>().Select(s => s.Value!)], IsSequence: true, line));
                    break;
                default:
                    errors.Add($"--config-file {path}: line {line}: {key} must be a value or a list of values");
                    break;
            }
        }

        return entries;
    }

    private static bool IsNull(YamlScalarNode scalar) =>
        scalar.Style == ScalarStyle.Plain && scalar.Value is null or "" or "~" or "null" or "Null" or "NULL";
}
