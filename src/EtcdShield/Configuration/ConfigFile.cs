using System.Text;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace EtcdShield.Configuration;

/// <summary>
/// <c>--config-file</c>: YAML whose keys are the flag names without the leading <c>--</c>, as in etcd's config
/// file. Values are scalars (a list flag may hold a comma-separated string) or sequences of scalars. Errors name
/// the file, the line and the key, never the file's contents.
/// </summary>
/// <remarks>
/// Read from the parser's events rather than a document model: the model hashes every mapping key, so an
/// alias-bomb key (lists of aliases of lists) took exponential time before a single check; here a key is a
/// scalar or an error, an alias is resolved only to a scalar or a list of scalars, and nothing is expanded.
/// </remarks>
internal static class ConfigFile
{
    /// <summary>Far above any real configuration; a device such as /dev/zero or a runaway file stops here.</summary>
    public const int MaxBytes = 1024 * 1024;

    /// <summary>One key of the file: its scalar values (one for a scalar, each item of a sequence) and where it is.</summary>
    internal sealed record Entry(string Key, IReadOnlyList<string> Values, bool IsSequence, long Line);

    public static IReadOnlyList<Entry> Read(string path, List<string> errors)
    {
        if (ReadText(path, errors) is not { } text)
        {
            return [];
        }

        try
        {
            return Parse(path, new Parser(new StringReader(text)), errors);
        }
        catch (YamlException e)
        {
            // YamlDotNet's messages describe the syntax only; the offending text is not repeated.
            errors.Add($"--config-file {path}: line {e.Start.Line}: not valid YAML ({e.Message})");
            return [];
        }
    }

    private static string? ReadText(string path, List<string> errors)
    {
        try
        {
            // Bounded whatever the file claims its length is: a device or a pipe has none.
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1);
            var buffer = new byte[MaxBytes + 1];
            var read = 0;
            int n;
            while (read < buffer.Length && (n = file.Read(buffer, read, buffer.Length - read)) > 0)
            {
                read += n;
            }

            if (read > MaxBytes)
            {
                errors.Add($"--config-file {path}: larger than {MaxBytes / 1024} KiB, not a configuration");
                return null;
            }

            return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(buffer, 0, read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DecoderFallbackException)
        {
            errors.Add($"--config-file {path}: cannot be read ({e.GetType().Name})");
            return null;
        }
    }

    private static List<Entry> Parse(string path, Parser parser, List<string> errors)
    {
        parser.Consume<StreamStart>();
        if (parser.TryConsume<StreamEnd>(out _))
        {
            return [];
        }

        var document = parser.Consume<DocumentStart>();
        if (parser.Accept<Scalar>(out var scalarRoot) && IsNull(scalarRoot))
        {
            parser.MoveNext();
            parser.Consume<DocumentEnd>();
            return parser.Accept<StreamEnd>(out _) ? [] : NotOneMapping(path, document.Start.Line, errors);
        }

        if (!parser.TryConsume<MappingStart>(out _))
        {
            return NotOneMapping(path, document.Start.Line, errors);
        }

        var anchors = new Dictionary<string, (IReadOnlyList<string> Values, bool IsSequence)>(StringComparer.Ordinal);
        var entries = new List<Entry>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (!parser.TryConsume<MappingEnd>(out _))
        {
            var keyEvent = parser.Current!;
            var line = keyEvent.Start.Line;
            if (keyEvent is not Scalar { Value.Length: > 0, Anchor.IsEmpty: true } keyScalar || IsNull(keyScalar))
            {
                errors.Add($"--config-file {path}: line {line}: keys must be flag names");
                parser.SkipThisAndNestedEvents();
                parser.SkipThisAndNestedEvents();
                continue;
            }

            var key = keyScalar.Value;
            parser.MoveNext();
            if (!seen.Add(key))
            {
                // Which of two values wins is a trap: whoever reads the top of the file sees the first one.
                errors.Add($"--config-file {path}: line {line}: {key} appears twice");
                parser.SkipThisAndNestedEvents();
                continue;
            }

            switch (Value(parser, anchors))
            {
                case null:
                    errors.Add($"--config-file {path}: line {line}: {key} must be a value or a list of values");
                    break;
                case { Values: null }:
                    // "key:" with nothing after it sets nothing, as an absent key.
                    break;
                case var (values, isSequence):
                    entries.Add(new Entry(key, values, isSequence, line));
                    break;
            }
        }

        parser.Consume<DocumentEnd>();
        return parser.Accept<StreamEnd>(out _) ? entries : NotOneMapping(path, parser.Current!.Start.Line, errors);
    }

    /// <summary>
    /// The value at the parser (consumed): its scalars, (null, false) for a null, or null for anything else
    /// (a mapping, a list holding more than scalars, an alias of one).
    /// </summary>
    private static (IReadOnlyList<string>? Values, bool IsSequence)? Value(Parser parser, Dictionary<string, (IReadOnlyList<string> Values, bool IsSequence)> anchors)
    {
        switch (parser.Current)
        {
            case AnchorAlias alias:
                parser.MoveNext();
                return anchors.TryGetValue(alias.Value.Value, out var known) ? known : null;
            case Scalar scalar:
                parser.MoveNext();
                if (IsNull(scalar))
                {
                    return (null, false);
                }

                Remember(anchors, scalar.Anchor, [scalar.Value], isSequence: false);
                return ([scalar.Value], false);
            case SequenceStart start:
                parser.MoveNext();
                var items = new List<string>();
                var scalars = true;
                while (!parser.TryConsume<SequenceEnd>(out _))
                {
                    if (parser.Current is Scalar item && !IsNull(item))
                    {
                        items.Add(item.Value);
                        Remember(anchors, item.Anchor, [item.Value], isSequence: false);
                        parser.MoveNext();
                    }
                    else if (parser.Current is AnchorAlias itemAlias && anchors.TryGetValue(itemAlias.Value.Value, out var aliased) && !aliased.IsSequence)
                    {
                        items.AddRange(aliased.Values);
                        parser.MoveNext();
                    }
                    else
                    {
                        scalars = false;
                        parser.SkipThisAndNestedEvents();
                    }
                }

                if (!scalars)
                {
                    return null;
                }

                Remember(anchors, start.Anchor, items, isSequence: true);
                return (items, true);
            default:
                parser.SkipThisAndNestedEvents();
                return null;
        }
    }

    private static void Remember(Dictionary<string, (IReadOnlyList<string> Values, bool IsSequence)> anchors, AnchorName anchor, IReadOnlyList<string> values, bool isSequence)
    {
        if (!anchor.IsEmpty)
        {
            anchors[anchor.Value] = (values, isSequence);
        }
    }

    private static List<Entry> NotOneMapping(string path, long line, List<string> errors)
    {
        errors.Add($"--config-file {path}: line {line}: must be one mapping of flag names to values");
        return [];
    }

    private static bool IsNull(Scalar scalar) =>
        scalar.Style == ScalarStyle.Plain && scalar.Value is "" or "~" or "null" or "Null" or "NULL";
}
