using System.Text;
using EtcdShield.Configuration;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EtcdShield.Authorization;

/// <summary>
/// Reads a <c>--policy-file</c> (YAML). Strict: unknown fields, unknown methods, empty matches and duplicate
/// names are errors with the line they are on, because a policy that means something other than what it says
/// is a security hole. See docs/policy.md for the format.
/// </summary>
internal static class PolicyFile
{
    /// <summary>A policy of thousands of identities fits many times over; anything larger is a mistake or an attack.</summary>
    internal const int MaxBytes = 4 * 1024 * 1024;

    /// <summary>The format needs 5 levels; YamlDotNet builds nodes recursively, so depth is checked before it does.</summary>
    internal const int MaxDepth = 64;

    private static readonly string[] IdentityFields = ["name", "match", "methods", "keys"];
    private static readonly string[] MatchFields = ["cn", "dns", "uri", "ou", "sha256"];
    private static readonly string[] KeyFields = ["key", "range_end", "prefix", "permission"];

    public static IReadOnlyList<PolicyIdentity> Load(string path)
    {
        string text;
        try
        {
            var length = new FileInfo(path).Length;
            if (length > MaxBytes)
            {
                throw new ConfigurationException($"--policy-file {path}: {length} bytes is more than the {MaxBytes} a policy may have");
            }

            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"cannot read --policy-file {path}: {e.Message}", e);
        }

        try
        {
            return Parse(text);
        }
        catch (ConfigurationException e)
        {
            throw new ConfigurationException($"--policy-file {path}: {e.Message}", e);
        }
    }

    public static IReadOnlyList<PolicyIdentity> Parse(string yaml)
    {
        if (yaml.Length > MaxBytes)
        {
            throw new ConfigurationException($"{yaml.Length} characters is more than the {MaxBytes} a policy may have");
        }

        var stream = new YamlStream();
        try
        {
            CheckDepth(yaml);
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new ConfigurationException($"line {e.Start.Line}: not valid YAML: {e.Message}");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet reports some malformed documents (a bad tag, an event it did not expect) with these
            // instead of a YamlException; found by fuzzing (tests/EtcdShield.Fuzz, target policy).
            throw new ConfigurationException($"not valid YAML: {e.Message}");
        }

        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ConfigurationException("expected one YAML document with an 'identities' list");
        }

        CheckFields(root, ["identities"], "the policy");
        if (Field(root, "identities") is not YamlSequenceNode list || list.Children.Count == 0)
        {
            throw new ConfigurationException($"line {root.Start.Line}: 'identities' must be a non-empty list: a policy that admits nobody is a mistake");
        }

        var identities = new List<PolicyIdentity>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in list.Children)
        {
            var identity = ParseIdentity(node);
            if (!names.Add(identity.Name))
            {
                throw new ConfigurationException($"line {node.Start.Line}: identity name '{identity.Name}' is used twice");
            }

            identities.Add(identity);
        }

        return identities;
    }

    /// <summary>
    /// Walks the parser's events (a loop, not recursion) so that a document nested deeper than any policy can be
    /// is refused before the representation model recurses into it, and so is one with aliases: an alias stands for
    /// the whole node it names, so a few nested ones ("billion laughs") make a small file as large as one likes to
    /// walk. A policy has no need of them.
    /// </summary>
    private static void CheckDepth(string yaml)
    {
        var parser = new Parser(new StringReader(yaml));
        var depth = 0;
        while (parser.MoveNext())
        {
            switch (parser.Current)
            {
                case YamlDotNet.Core.Events.MappingStart or YamlDotNet.Core.Events.SequenceStart:
                    if (++depth > MaxDepth)
                    {
                        throw new ConfigurationException($"line {parser.Current.Start.Line}: nested deeper than {MaxDepth} levels");
                    }

                    break;
                case YamlDotNet.Core.Events.MappingEnd or YamlDotNet.Core.Events.SequenceEnd:
                    depth--;
                    break;
                case YamlDotNet.Core.Events.AnchorAlias alias:
                    throw new ConfigurationException($"line {alias.Start.Line}: YAML aliases (*{alias.Value}) are not supported in a policy; write the entries out");
                default:
                    break;
            }
        }
    }

    private static PolicyIdentity ParseIdentity(YamlNode node)
    {
        if (node is not YamlMappingNode map)
        {
            throw new ConfigurationException($"line {node.Start.Line}: each identity is a mapping with name, match, methods and keys");
        }

        CheckFields(map, IdentityFields, "an identity");
        var name = Scalar(map, "name") ?? throw new ConfigurationException($"line {map.Start.Line}: an identity needs a name");
        if (Field(map, "match") is not YamlMappingNode match)
        {
            throw new ConfigurationException($"line {map.Start.Line}: identity '{name}' needs a 'match' mapping (cn, dns, uri, ou, sha256)");
        }

        CheckFields(match, MatchFields, $"the match of '{name}'");
        var identityMatch = new IdentityMatch(
            Strings(match, "cn"), Strings(match, "dns"), Strings(match, "uri"), Strings(match, "ou"), Strings(match, "sha256"));
        if (identityMatch.IsEmpty)
        {
            throw new ConfigurationException($"line {match.Start.Line}: identity '{name}' matches nothing: give cn, dns, uri, ou or sha256");
        }

        foreach (var fingerprint in identityMatch.Sha256Fingerprints)
        {
            if (fingerprint.Length != 64 || !fingerprint.All(char.IsAsciiHexDigit))
            {
                throw new ConfigurationException($"line {match.Start.Line}: identity '{name}': sha256 '{fingerprint}' is not a SHA-256 fingerprint (64 hex digits)");
            }
        }

        var methods = new List<string>();
        foreach (var (written, line) in StringsWithLines(map, "methods"))
        {
            var entry = MethodNames.Normalize(written);
            var expanded = MethodNames.Expand(entry)
                ?? throw new ConfigurationException($"line {line}: identity '{name}': no etcd method or service '{entry}' (e.g. Maintenance/Status, Lease, KV/Compact, *)");
            if (expanded.Count == 0 && MethodNames.PrivilegedIn(entry) is [var first, ..])
            {
                throw new ConfigurationException($"line {line}: identity '{name}': the service name {entry} grants none of its methods: they change the cluster, its auth or export the store, so each is granted only by its full name (e.g. {first})");
            }

            if (MethodNames.GovernedByKeys.Contains(entry) || expanded.Count == 0)
            {
                throw new ConfigurationException($"line {line}: identity '{name}': {entry} is allowed by key grants, not by methods: give it 'keys'");
            }

            methods.AddRange(expanded);
        }

        var grants = new List<(KeyRange, KeyPermission)>();
        if (Field(map, "keys") is { } keys)
        {
            if (keys is not YamlSequenceNode keyList)
            {
                throw new ConfigurationException($"line {keys.Start.Line}: identity '{name}': 'keys' is a list of grants");
            }

            grants.AddRange(keyList.Children.Select(k => ParseGrant(name, k)));
        }

        return new PolicyIdentity(name, identityMatch, methods, new KeyGrants(grants));
    }

    private static (KeyRange, KeyPermission) ParseGrant(string identity, YamlNode node)
    {
        if (node is not YamlMappingNode grant)
        {
            throw new ConfigurationException($"line {node.Start.Line}: identity '{identity}': a key grant is a mapping with key (and range_end) or prefix, and permission");
        }

        CheckFields(grant, KeyFields, $"a key grant of '{identity}'");
        var where = $"line {grant.Start.Line}: identity '{identity}'";
        var permission = Scalar(grant, "permission")?.ToUpperInvariant() switch
        {
            "READ" => KeyPermission.Read,
            "WRITE" => KeyPermission.Write,
            "READWRITE" or "READ_WRITE" => KeyPermission.ReadWrite,
            null => throw new ConfigurationException($"{where}: a key grant needs permission: read, write or readwrite"),
            var other => throw new ConfigurationException($"{where}: permission '{other.ToLowerInvariant()}' is not read, write or readwrite"),
        };

        var key = Scalar(grant, "key");
        var rangeEnd = Scalar(grant, "range_end");
        var prefix = Scalar(grant, "prefix");
        if (prefix is not null)
        {
            if (key is not null || rangeEnd is not null)
            {
                throw new ConfigurationException($"{where}: a key grant has either prefix, or key with an optional range_end");
            }

            return (KeyRange.Prefix(Encoding.UTF8.GetBytes(prefix)), permission);
        }

        if (key is null)
        {
            throw new ConfigurationException($"{where}: a key grant needs key or prefix (prefix: \"\" grants every key)");
        }

        var keyBytes = Encoding.UTF8.GetBytes(key);
        var endBytes = rangeEnd is null ? [] : Encoding.UTF8.GetBytes(rangeEnd);
        if (endBytes.Length > 0 && !(endBytes is [0]) && endBytes.AsSpan().SequenceCompareTo(keyBytes) <= 0)
        {
            throw new ConfigurationException($"{where}: range_end must come after key (or be \"\\0\" for every key from key on)");
        }

        return (KeyRange.FromEtcd(keyBytes, endBytes), permission);
    }

    private static void CheckFields(YamlMappingNode map, string[] known, string what)
    {
        foreach (var (keyNode, _) in map.Children)
        {
            var field = (keyNode as YamlScalarNode)?.Value ?? "";
            if (!known.Contains(field, StringComparer.Ordinal))
            {
                throw new ConfigurationException($"line {keyNode.Start.Line}: unknown field '{field}' in {what} (known: {string.Join(", ", known)})");
            }
        }
    }

    private static YamlNode? Field(YamlMappingNode map, string name) =>
        map.Children.TryGetValue(new YamlScalarNode(name), out var value) ? value : null;

    private static string? Scalar(YamlMappingNode map, string name) => Field(map, name) switch
    {
        null => null,
        YamlScalarNode scalar => scalar.Value,
        var other => throw new ConfigurationException($"line {other.Start.Line}: '{name}' must be a single value"),
    };

    private static List<string> Strings(YamlMappingNode map, string name) =>
        StringsWithLines(map, name).Select(s => s.Value).ToList();

    /// <summary>A field that may be one value or a list of values.</summary>
    private static List<(string Value, long Line)> StringsWithLines(YamlMappingNode map, string name)
    {
        switch (Field(map, name))
        {
            case null:
                return [];
            case YamlScalarNode scalar:
                return [(NonEmpty(scalar, name), scalar.Start.Line)];
            case YamlSequenceNode sequence:
                return sequence.Children.Select(item => item is YamlScalarNode s
                    ? (NonEmpty(s, name), s.Start.Line)
                    : throw new ConfigurationException($"line {item.Start.Line}: '{name}' is a list of values")).ToList();
            case var other:
                throw new ConfigurationException($"line {other.Start.Line}: '{name}' is a value or a list of values");
        }
    }

    private static string NonEmpty(YamlScalarNode scalar, string name) =>
        string.IsNullOrEmpty(scalar.Value) ? throw new ConfigurationException($"line {scalar.Start.Line}: '{name}' may not be empty") : scalar.Value;
}
