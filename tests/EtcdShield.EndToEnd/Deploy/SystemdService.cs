using System.Text.RegularExpressions;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// The [Service] settings of a unit with its drop-ins applied, and its command lines expanded as systemd expands
/// them (environment from Environment= then EnvironmentFile=, which wins; <c>$NAME</c> splits into words,
/// <c>${NAME}</c> stays one; <c>%H</c> is the host name, <c>%p</c> the unit's): enough to run a unit's processes without systemd.
/// </summary>
internal sealed partial class SystemdService
{
    private readonly Dictionary<string, List<string>> settings = new(StringComparer.Ordinal);

    private readonly string unitName;

    private SystemdService(string unitName) => this.unitName = unitName;

    /// <param name="unitFile">The unit, then its drop-ins in the order systemd applies them.</param>
    public static SystemdService Load(string unitFile, params string[] dropIns)
    {
        var service = new SystemdService(Path.GetFileNameWithoutExtension(unitFile));
        foreach (var file in dropIns.Prepend(unitFile))
        {
            var section = "";
            foreach (var raw in File.ReadAllLines(file))
            {
                var line = raw.Trim();
                if (line.Length == 0 || line[0] is '#' or ';')
                {
                    continue;
                }

                if (line[0] == '[')
                {
                    section = line;
                    continue;
                }

                if (section != "[Service]")
                {
                    continue;
                }

                var equals = line.IndexOf('=', StringComparison.Ordinal);
                var (key, value) = (line[..equals].Trim(), line[(equals + 1)..].Trim());
                if (!service.settings.TryGetValue(key, out var values))
                {
                    service.settings[key] = values = [];
                }

                // An empty assignment resets a list setting, as a drop-in's "ExecStart=" does.
                if (value.Length == 0)
                {
                    values.Clear();
                }
                else
                {
                    values.Add(value);
                }
            }
        }

        return service;
    }

    public IReadOnlyList<string> Values(string key) => settings.TryGetValue(key, out var values) ? values : [];

    public string? Value(string key) => Values(key) is [.., var last] ? last : null;

    /// <summary>Environment= assignments, then each EnvironmentFile= (a leading '-': optional), files read through <paramref name="map"/>.</summary>
    public Dictionary<string, string> Environment(Func<string, string> map)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var assignments in Values("Environment"))
        {
            foreach (Match assignment in Assignment().Matches(assignments))
            {
                var text = assignment.Value.Trim('"');
                var equals = text.IndexOf('=', StringComparison.Ordinal);
                environment[text[..equals]] = Specifiers(text[(equals + 1)..]);
            }
        }

        foreach (var entry in Values("EnvironmentFile"))
        {
            var path = map(Specifiers(entry.TrimStart('-')));
            if (!File.Exists(path) && entry.StartsWith('-'))
            {
                continue;
            }

            foreach (var raw in File.ReadAllLines(path))
            {
                var line = raw.Trim();
                if (line.Length == 0 || line[0] is '#' or ';')
                {
                    continue;
                }

                var equals = line.IndexOf('=', StringComparison.Ordinal);
                environment[line[..equals].Trim()] = line[(equals + 1)..].Trim().Trim('"');
            }
        }

        return environment;
    }

    /// <summary>One Exec*= line as the argv systemd runs.</summary>
    public IReadOnlyList<string> Expand(string commandLine, IReadOnlyDictionary<string, string> environment)
    {
        var argv = new List<string>();
        foreach (var word in commandLine.TrimStart('-', '@', '+', '!', ':').Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (Regex.Match(word, @"^\$([A-Za-z_][A-Za-z0-9_]*)$") is { Success: true } split)
            {
                argv.AddRange(environment.GetValueOrDefault(split.Groups[1].Value, "").Split(' ', StringSplitOptions.RemoveEmptyEntries));
                continue;
            }

            argv.Add(Specifiers(Regex.Replace(word, @"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", m => environment.GetValueOrDefault(m.Groups[1].Value, ""))));
        }

        return argv;
    }

    private string Specifiers(string text) =>
        text.Replace("%H", System.Environment.MachineName, StringComparison.Ordinal).Replace("%p", unitName, StringComparison.Ordinal);

    [GeneratedRegex(@"""[^""]*""|[^\s""]+")]
    private static partial Regex Assignment();
}
