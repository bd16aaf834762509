using System.Globalization;

namespace EtcdShield.Configuration;

/// <summary>
/// The value of each flag after the sources are merged (command line, then ETCDSHIELD_* variables, then the config
/// file; see <see cref="ShieldCommandLine"/>), and every problem found so far. Reading a value never throws: a bad
/// one is recorded with a message naming its flag and a default is returned, so that all problems are reported
/// together by <see cref="ThrowIfAny"/>.
/// </summary>
internal sealed class FlagValues
{
    private readonly Dictionary<string, IReadOnlyList<string>> _values;
    private readonly List<string> _errors;

    public FlagValues(IReadOnlyDictionary<string, IReadOnlyList<string>> values, IEnumerable<string> errors)
    {
        _values = new Dictionary<string, IReadOnlyList<string>>(values, StringComparer.Ordinal);
        _errors = [.. errors];
    }

    public IReadOnlyList<string> Errors => _errors;

    public void Error(string message) => _errors.Add(message);

    /// <exception cref="ConfigurationException">Some value was wrong or missing: all of them, one message each.</exception>
    public void ThrowIfAny()
    {
        if (_errors.Count > 0)
        {
            throw new ConfigurationException([.. _errors.Distinct(StringComparer.Ordinal)]);
        }
    }

    public bool Has(string name) => _values.ContainsKey(name);

    public string? Single(string name) => _values.TryGetValue(name, out var v) && v.Count > 0 ? v[^1] : null;

    public IReadOnlyList<string> Many(string name) => _values.TryGetValue(name, out var v) ? v : [];

    public bool Switch(string name)
    {
        if (Single(name) is not { } text)
        {
            return false;
        }

        if (!bool.TryParse(text, out var value))
        {
            Error($"--{name} takes true or false, not '{text}'");
        }

        return value;
    }

    public int Int(string name, int defaultValue, int min, int max)
    {
        var text = Single(name);
        if (text is null)
        {
            return defaultValue;
        }

        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            Error($"--{name} must be a whole number from {min} to {max}, not '{text}'");
            return defaultValue;
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

        if (ParseDuration(text) is { } parsed && parsed >= min)
        {
            return parsed;
        }

        Error($"--{name} must be a duration of at least {min.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s, like 10s, 5m or 720h; not '{text}'");
        return defaultValue;
    }

    /// <summary>How a duration default is shown in --help, in the same units it is written in.</summary>
    public static string FormatDuration(TimeSpan value) =>
        value.TotalHours >= 1 && value.TotalHours % 1 == 0 ? $"{value.TotalHours.ToString(CultureInfo.InvariantCulture)}h"
        : value.TotalSeconds % 1 == 0 ? $"{value.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s"
        : $"{value.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)}ms";

    private static TimeSpan? ParseDuration(string text)
    {
        var unitStart = text.AsSpan().IndexOfAnyExceptInRange('0', '9');
        if (unitStart <= 0 ||
            !long.TryParse(text.AsSpan(0, unitStart), NumberStyles.None, CultureInfo.InvariantCulture, out var amount) ||
            amount > 1_000_000)
        {
            return null;
        }

        return text[unitStart..] switch
        {
            "ms" => TimeSpan.FromMilliseconds(amount),
            "s" => TimeSpan.FromSeconds(amount),
            "m" => TimeSpan.FromMinutes(amount),
            "h" => TimeSpan.FromHours(amount),
            "d" => TimeSpan.FromDays(amount),
            _ => null,
        };
    }
}
