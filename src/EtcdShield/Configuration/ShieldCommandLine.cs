using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;

namespace EtcdShield.Configuration;

/// <summary>One command of the tree: its path ("serve", "keys create"), what it does, and its flags.</summary>
/// <remarks>A command without flags that has subcommands ("keys") only groups them.</remarks>
internal sealed record CommandSpec(string Path, string Description, IReadOnlyList<Flag> Flags);

/// <summary>What the user asked for: the command, its flags from every source, and whether help was asked for.</summary>
internal sealed record ParsedCommand(string Path, FlagValues Flags, bool HelpRequested, IReadOnlyList<string> UnknownCommands)
{
    internal ParseResult? Result { get; init; }

    /// <summary>Whether <c>--version</c> was given (the root command's, as in etcd).</summary>
    public bool VersionRequested { get; init; }
}

/// <summary>
/// One System.CommandLine parser for every command, with etcd's syntax (<c>--name value</c>, <c>--name=value</c>,
/// repeatable list flags that also split on commas, the last of a repeated single-valued flag wins) and etcd's
/// other two sources: <c>ETCDSHIELD_&lt;FLAG&gt;</c> variables and a YAML <c>--config-file</c>. Per flag the command
/// line wins over the environment, which wins over the file; a list from a higher source replaces a lower one.
/// A variable or key that names a flag of another command is ignored, so one file serves every command; one that
/// names no flag at all is an error.
/// </summary>
internal sealed class ShieldCommandLine
{
    public static readonly Flag ConfigFileFlag = Flag.Single(
        "config-file", "FILE",
        "YAML file of flags: keys are the flag names without --, lists as YAML lists or comma-separated strings, switches as true/false. " +
        "Relative paths in it are relative to the current directory, as in etcd. Also ETCDSHIELD_CONFIG_FILE.");

    public const string Precedence =
        "Every flag may also be set by the environment variable ETCDSHIELD_<FLAG> (upper case, '-' as '_', e.g. ETCDSHIELD_LISTEN_CLIENT_URLS; " +
        "lists comma-separated, switches true or false) or by a key of --config-file (the flag name without --). " +
        "Precedence per flag: the command line, then the environment, then the config file; a list from a higher source replaces a lower one.";

    private readonly RootCommand _root;
    private readonly VersionOption _version;
    private readonly Dictionary<Command, (string Path, IReadOnlyList<(Flag Flag, Option Option)> Options)> _commands = [];
    private readonly HashSet<string> _allFlagNames = new(StringComparer.Ordinal);
    private readonly HashSet<string> _switchNames = new(StringComparer.Ordinal);

    /// <param name="rootPath">The command whose flags are accepted bare, without its name ("serve").</param>
    public ShieldCommandLine(string description, IReadOnlyList<CommandSpec> commands, string rootPath)
    {
        _root = new RootCommand(description);
        _version = _root.Options.OfType<VersionOption>().Single();
        // Every command runs outside System.CommandLine (it only parses), but one without an action is
        // "required command not provided" to it.
        _root.SetAction(_ => 0);
        var byPath = new Dictionary<string, Command>(StringComparer.Ordinal);
        foreach (var spec in commands)
        {
            var words = spec.Path.Split(' ');
            Command parent = words.Length == 1 ? _root : byPath[string.Join(' ', words[..^1])];
            var command = new Command(words[^1], spec.Description);
            if (spec.Flags.Count > 0)
            {
                command.SetAction(_ => 0);
            }

            parent.Subcommands.Add(command);
            byPath[spec.Path] = command;
            if (spec.Flags.Count > 0)
            {
                _commands[command] = (spec.Path, AddOptions(command, spec.Flags));
                _allFlagNames.UnionWith(spec.Flags.Select(f => f.Name));
                _switchNames.UnionWith(spec.Flags.Where(f => f.Arity == FlagArity.Switch).Select(f => f.Name));
            }
            else
            {
                _commands[command] = (spec.Path, []);
            }

            if (spec.Path == rootPath)
            {
                _commands[_root] = (spec.Path, AddOptions(_root, spec.Flags));
            }
        }

        _allFlagNames.Add(ConfigFileFlag.Name);
    }

    /// <summary>A parser for one command's flags alone (its path is "serve"), as tests and embedders build options.</summary>
    public static FlagValues ParseFlags(IReadOnlyList<string> args, IReadOnlyList<Flag> flags, IReadOnlyDictionary<string, string>? environment = null) =>
        new ShieldCommandLine("", [new CommandSpec("serve", "", flags)], "serve").Parse(args, environment ?? new Dictionary<string, string>()).Flags;

    public ParsedCommand Parse(IReadOnlyList<string> args, IReadOnlyDictionary<string, string> environment)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(environment);

        var errors = new List<string>();
        // No @response-files: etcd has none, and a value starting with '@' must stay a value.
        var result = _root.Parse(WithoutBadSwitchValues(args, errors), new ParserConfiguration { ResponseFileTokenReplacer = null });
        var (path, options) = _commands[result.CommandResult.Command];
        var help = result.Action is HelpAction;
        var version = result.Action is not null && ReferenceEquals(result.Action, _version.Action);
        if (options.Count == 0)
        {
            // A group such as "keys": only its subcommands run.
            return new ParsedCommand(path, new FlagValues(new Dictionary<string, IReadOnlyList<string>>(), []), help, [.. result.UnmatchedTokens]) { Result = result, VersionRequested = version };
        }

        var values = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (flag, option) in options)
        {
            if (result.GetResult(option) is { Implicit: false } given)
            {
                var tokens = given.Tokens.Select(t => t.Value).ToList();
                if (tokens.Count > 0 || flag.Arity == FlagArity.Switch)
                {
                    values[flag.Name] = Normalize(flag, tokens);
                }
            }
        }

        errors.AddRange(CommandLineErrors(result, options));
        errors.AddRange(result.UnmatchedTokens.Select(Unmatched));
        var flags = options.Select(o => o.Flag).ToList();
        var sources = new Dictionary<string, FlagSource>(StringComparer.Ordinal);
        FromEnvironment(flags, environment, values, sources, errors);
        var configFile = values.TryGetValue(ConfigFileFlag.Name, out var file) ? file[^1]
            : environment.TryGetValue(ConfigFileFlag.EnvironmentVariable, out var fromEnvironment) && fromEnvironment.Length > 0 ? fromEnvironment
            : null;
        if (configFile is not null)
        {
            FromFile(configFile, flags, values, sources, errors);
        }

        return new ParsedCommand(path, new FlagValues(values, errors, sources), help, []) { Result = result, VersionRequested = version };
    }

    /// <summary>The generated help of the parsed command (or of the root, for bare flags).</summary>
    public static int WriteHelp(ParsedCommand parsed, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(parsed);
        return parsed.Result!.Invoke(new InvocationConfiguration { Output = output, Error = output });
    }

    /// <summary>The generated help of the command at <paramref name="path"/> ("" for the root).</summary>
    public string Help(string path)
    {
        using var output = new StringWriter();
        WriteHelp(Parse([.. path.Split(' ', StringSplitOptions.RemoveEmptyEntries), "--help"], new Dictionary<string, string>()), output);
        return output.ToString();
    }

    /// <summary>
    /// A switch takes a value only after '=' (<c>--flag=false</c>), as in etcd. System.CommandLine would leave a
    /// value that is not a boolean over as a stray argument; it is named with its flag here instead.
    /// </summary>
    private List<string> WithoutBadSwitchValues(IReadOnlyList<string> args, List<string> errors)
    {
        var kept = new List<string>(args.Count);
        foreach (var arg in args)
        {
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            var name = eq > 0 ? arg[..eq].TrimStart('-') : "";
            if (arg.StartsWith('-') && _switchNames.Contains(name) && !bool.TryParse(arg[(eq + 1)..], out _))
            {
                errors.Add($"--{name} takes true or false, not '{arg[(eq + 1)..]}'");
                continue;
            }

            kept.Add(arg);
        }

        return kept;
    }

    private static List<(Flag, Option)> AddOptions(Command command, IReadOnlyList<Flag> flags)
    {
        var added = new List<(Flag, Option)>();
        foreach (var flag in (IEnumerable<Flag>)[.. flags, ConfigFileFlag])
        {
            Option option = flag.Arity == FlagArity.Switch
                ? new Option<bool>("--" + flag.Name) { Description = flag.Help, Arity = ArgumentArity.ZeroOrOne }
                // Every occurrence is kept (strings, converted later with messages of our own): a repeated
                // single-valued flag then means its last value, as in etcd, instead of a parse error.
                : new Option<string[]>("--" + flag.Name) { Description = flag.Help, HelpName = flag.ValueName, Arity = ArgumentArity.OneOrMore };
            command.Options.Add(option);
            added.Add((flag, option));
        }

        return added;
    }

    private static List<string> Normalize(Flag flag, IReadOnlyList<string> values) => flag.Arity switch
    {
        FlagArity.Switch => [values.Count == 0 ? "true" : values[^1]],
        FlagArity.Single => [values[^1]],
        _ => [.. values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))],
    };

    private static IEnumerable<string> CommandLineErrors(ParseResult result, IReadOnlyList<(Flag Flag, Option Option)> options)
    {
        foreach (var error in result.Errors)
        {
            if (error.SymbolResult is CommandResult && result.UnmatchedTokens.Any(t => error.Message.Contains($"'{t}'", StringComparison.Ordinal)))
            {
                // Reported by Unmatched, in etcd's words.
                continue;
            }

            var optionResult = error.SymbolResult as OptionResult ?? (error.SymbolResult as ArgumentResult)?.Parent as OptionResult;
            var flag = optionResult is null ? null : options.FirstOrDefault(o => ReferenceEquals(o.Option, optionResult.Option)).Flag;
            if (flag is null)
            {
                yield return error.Message;
            }
            else if (optionResult!.Tokens.Count == 0 && flag.Arity != FlagArity.Switch)
            {
                yield return $"--{flag.Name} needs a value ({flag.ValueName})";
            }

            // Otherwise the flag has values, which the command checks with messages of its own (a switch's
            // "maybe", a second value of a switch: the last one is taken, as for every single-valued flag).
        }
    }

    private static string Unmatched(string token)
    {
        if (!token.StartsWith('-'))
        {
            return $"unexpected argument '{token}' (flags start with --)";
        }

        var name = token.TrimStart('-');
        var eq = name.IndexOf('=', StringComparison.Ordinal);
        return $"unknown flag --{(eq >= 0 ? name[..eq] : name)} (see --help)";
    }

    private void FromEnvironment(List<Flag> flags, IReadOnlyDictionary<string, string> environment, Dictionary<string, IReadOnlyList<string>> values, Dictionary<string, FlagSource> sources, List<string> errors)
    {
        var known = _allFlagNames.Select(Flag.EnvironmentVariableOf).ToHashSet(StringComparer.Ordinal);
        foreach (var name in environment.Keys.Where(k => k.StartsWith(Flag.EnvironmentPrefix, StringComparison.Ordinal) && !known.Contains(k)).Order(StringComparer.Ordinal))
        {
            errors.Add($"{name} is not the variable of any flag (ETCDSHIELD_<FLAG>, e.g. ETCDSHIELD_LISTEN_CLIENT_URLS)");
        }

        foreach (var flag in flags.Where(f => f != ConfigFileFlag && !values.ContainsKey(f.Name)))
        {
            // Empty is unset, so an EnvironmentFile line "ETCDSHIELD_X=" cannot switch anything on by accident.
            if (environment.TryGetValue(flag.EnvironmentVariable, out var text) && text.Length > 0)
            {
                values[flag.Name] = Normalize(flag, [text]);
                sources[flag.Name] = FlagSource.Environment;
            }
        }
    }

    private void FromFile(string path, List<Flag> flags, Dictionary<string, IReadOnlyList<string>> values, Dictionary<string, FlagSource> sources, List<string> errors)
    {
        if (!File.Exists(path))
        {
            errors.Add($"--config-file {path}: {(Directory.Exists(path) ? "a directory, not a file" : "file not found")}");
            return;
        }

        var byName = flags.ToDictionary(f => f.Name, StringComparer.Ordinal);
        foreach (var entry in ConfigFile.Read(path, errors))
        {
            if (entry.Key == ConfigFileFlag.Name || !_allFlagNames.Contains(entry.Key))
            {
                errors.Add($"--config-file {path}: line {entry.Line}: unknown key '{entry.Key}' (keys are flag names without --, e.g. listen-client-urls)");
            }
            else if (!byName.TryGetValue(entry.Key, out var flag) || values.ContainsKey(entry.Key))
            {
                // Another command's flag, or set by a higher source.
            }
            else if (entry.IsSequence && flag.Arity != FlagArity.Repeated)
            {
                errors.Add($"--config-file {path}: line {entry.Line}: {entry.Key} takes one value, not a list");
            }
            else if (entry.Values.Count > 0)
            {
                values[flag.Name] = Normalize(flag, entry.Values);
                sources[flag.Name] = FlagSource.ConfigFile;
            }
        }
    }
}
