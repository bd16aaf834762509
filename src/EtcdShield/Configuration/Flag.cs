namespace EtcdShield.Configuration;

/// <summary>One flag: its name (without dashes), how it takes values, and its help text.</summary>
internal sealed record Flag(string Name, FlagArity Arity, string ValueName, string Help)
{
    public const string EnvironmentPrefix = "ETCDSHIELD_";

    /// <summary>The variable that sets this flag when the command line does not: ETCDSHIELD_LISTEN_CLIENT_URLS.</summary>
    public string EnvironmentVariable => EnvironmentVariableOf(Name);

    public static string EnvironmentVariableOf(string name) =>
        EnvironmentPrefix + name.ToUpperInvariant().Replace('-', '_');

    public static Flag Switch(string name, string help) => new(name, FlagArity.Switch, "", help);
    public static Flag Single(string name, string valueName, string help) => new(name, FlagArity.Single, valueName, help);
    public static Flag Repeated(string name, string valueName, string help) => new(name, FlagArity.Repeated, valueName, help);
}

internal enum FlagArity
{
    /// <summary>Present means true; <c>--flag=false</c> turns it off.</summary>
    Switch,
    /// <summary>One value; given twice, the last one wins (as in etcd).</summary>
    Single,
    /// <summary>May be given many times; every value is kept, commas split values too.</summary>
    Repeated,
}
