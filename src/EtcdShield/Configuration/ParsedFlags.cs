using System.Globalization;

namespace EtcdShield.Configuration;

/// <summary>
/// The flags a user gave, in etcd's style: <c>--name value</c> or <c>--name=value</c>.
/// Unknown flags and missing values are errors, never silently ignored.
/// </summary>
internal sealed class ParsedFlags
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);

    private ParsedFlags()
    {
    }

    public static ParsedFlags Parse(IReadOnlyList<string> args, IReadOnlyList<Flag> known)
    {
        var byName = known.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var parsed = new ParsedFlags();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith('-'))
            {
                throw new ConfigurationException($"unexpected argument '{arg}' (flags start with --)");
            }

            var body = arg.TrimStart('-');
            string? inlineValue = null;
            var eq = body.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                inlineValue = body[(eq + 1)..];
                body = body[..eq];
            }

            if (!byName.TryGetValue(body, out var flag))
            {
                throw new ConfigurationException($"unknown flag --{body} (see --help)");
            }

            string value;
            if (flag.Arity == FlagArity.Switch)
            {
                value = inlineValue ?? "true";
                if (!bool.TryParse(value, out _))
                {
                    throw new ConfigurationException($"--{flag.Name} takes true or false, not '{value}'");
                }
            }
            else if (inlineValue is not null)
            {
                value = inlineValue;
            }
            else if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                value = args[++i];
            }
            else
            {
                throw new ConfigurationException($"--{flag.Name} needs a value ({flag.ValueName})");
            }

            if (!parsed._values.TryGetValue(flag.Name, out var list))
            {
                parsed._values[flag.Name] = list = [];
            }

            if (flag.Arity == FlagArity.Single)
            {
                list.Clear();
            }

            if (flag.Arity == FlagArity.Repeated)
            {
                list.AddRange(value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            }
            else
            {
                list.Add(value);
            }
        }

        return parsed;
    }

    public bool Has(string name) => _values.ContainsKey(name);

    public string? Single(string name) => _values.TryGetValue(name, out var v) && v.Count > 0 ? v[^1] : null;

    public IReadOnlyList<string> Many(string name) => _values.TryGetValue(name, out var v) ? v : [];

    public bool Switch(string name) => Single(name) is { } v && bool.Parse(v);

    public int Int(string name, int defaultValue, int min, int max)
    {
        var text = Single(name);
        if (text is null)
        {
            return defaultValue;
        }

        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            throw new ConfigurationException($"--{name} must be a whole number from {min} to {max}, not '{text}'");
        }

        return value;
    }

    /// <summary>A duration as etcd and Kubernetes write them: a number and a unit (ms, s, m, h, d), e.g. 10s or 720h.</summary>
    public TimeSpan Duration(string name, TimeSpan defaultValue, TimeSpan min)
    {
        var text = Single(name);
        if (text is null)
        {
            return defaultValue;
        }

        var unitStart = text.AsSpan().IndexOfAnyExceptInRange('0', '9');
        if (unitStart > 0 &&
            long.TryParse(text.AsSpan(0, unitStart), NumberStyles.None, CultureInfo.InvariantCulture, out var amount) &&
            amount <= 1_000_000)
        {
            TimeSpan? value = text[unitStart..] switch
            {
                "ms" => TimeSpan.FromMilliseconds(amount),
                "s" => TimeSpan.FromSeconds(amount),
                "m" => TimeSpan.FromMinutes(amount),
                "h" => TimeSpan.FromHours(amount),
                "d" => TimeSpan.FromDays(amount),
                _ => null,
            };
            if (value is { } parsed && parsed >= min)
            {
                return parsed;
            }
        }

        throw new ConfigurationException($"--{name} must be a duration of at least {min.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s, like 10s, 5m or 720h; not '{text}'");
    }
}
