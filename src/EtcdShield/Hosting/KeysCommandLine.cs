using System.Globalization;
using System.Text;
using EtcdShield.Configuration;
using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Hosting;

/// <summary>
/// The flags of <c>etcdshield keys create|rotate|status</c>: the proxy's own --pkcs11-* flags (same names, same
/// help, taken from <see cref="ServeCommandLine.Flags"/> so they cannot drift apart), and for status the
/// --upstream-* flags to count the values each KEK protects.
/// </summary>
internal static class KeysCommandLine
{
    public static readonly IReadOnlyList<string> Subcommands = ["create", "rotate", "status"];

    private static readonly string[] Pkcs11FlagNames =
        ["pkcs11-module", "pkcs11-token-label", "pkcs11-slot", "pkcs11-pin-file", "pkcs11-key-label"];

    private static readonly string[] UpstreamFlagNames =
        ["upstream-endpoints", "upstream-cert-file", "upstream-key-file", "upstream-trusted-ca-file"];

    public static IReadOnlyList<Flag> FlagsFor(string subcommand)
    {
        IEnumerable<string> names = subcommand == "status" ? [.. Pkcs11FlagNames, .. UpstreamFlagNames] : Pkcs11FlagNames;
        return [.. names.Select(n => ServeCommandLine.Flags.Single(f => f.Name == n)), Flag.Switch("help", "Show this help.")];
    }

    /// <exception cref="ConfigurationException">A flag is missing or wrong; the message says which.</exception>
    public static KeysCommandOptions ToOptions(string subcommand, ParsedFlags flags)
    {
        ArgumentNullException.ThrowIfNull(flags);
        string module = RequiredFile(flags, "pkcs11-module");
        string? tokenLabel = flags.Single("pkcs11-token-label");
        ulong? slot = flags.Single("pkcs11-slot") is { } text ? ParseSlot(text) : null;
        if ((tokenLabel is null) == (slot is null))
        {
            throw new ConfigurationException("give the token with exactly one of --pkcs11-token-label or --pkcs11-slot");
        }

        Pkcs11Settings settings = new()
        {
            ModulePath = module,
            TokenLabel = tokenLabel,
            Slot = slot,
            PinFile = RequiredFile(flags, "pkcs11-pin-file"),
            KeyLabel = flags.Single("pkcs11-key-label") ?? throw new ConfigurationException("--pkcs11-key-label is required"),
        };
        if (Pkcs11KeyLabel.Problem(settings.KeyLabel) is { } problem)
        {
            throw new ConfigurationException($"--pkcs11-key-label: {problem}");
        }

        ShieldOptions? upstream = null;
        if (subcommand == "status" && flags.Has("upstream-endpoints"))
        {
            upstream = UpstreamOptions(flags);
        }
        else if (subcommand == "status" && UpstreamFlagNames.Any(flags.Has))
        {
            throw new ConfigurationException("--upstream-cert-file, --upstream-key-file and --upstream-trusted-ca-file need --upstream-endpoints");
        }

        return new KeysCommandOptions(subcommand, settings, upstream);
    }

    public static string Help(string? subcommand)
    {
        StringBuilder text = new();
        if (subcommand is null)
        {
            text.AppendLine("etcdshield keys: manage the key-encryption key (KEK) in the HSM.");
            text.AppendLine();
            text.AppendLine("Usage: etcdshield keys create|rotate|status [flags]   (etcdshield keys COMMAND --help for its flags)");
            text.AppendLine();
            text.AppendLine("  create  Make version 1 of the KEK (labelled --pkcs11-key-label) in the token; refuses if it exists.");
            text.AppendLine("  rotate  Make the next version (LABEL#2, LABEL#3, ...). Running proxies wrap new data keys with it");
            text.AppendLine("          within 30 s; values under older versions keep decrypting while those stay in the token.");
            text.AppendLine("  status  List the versions in the token and which one is current; with --upstream-endpoints, also");
            text.AppendLine("          count the values and data keys in etcd under each KEK.");
            text.AppendLine();
            text.AppendLine("Exit codes: 0 done, 1 the HSM or etcd failed (the message says why), 2 bad flags.");
            return text.ToString();
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"Usage: etcdshield keys {subcommand} [flags]");
        text.AppendLine();
        text.AppendLine("Flags (--name value or --name=value):");
        foreach (Flag flag in FlagsFor(subcommand))
        {
            text.AppendLine(flag.Arity == FlagArity.Switch ? $"  --{flag.Name}" : $"  --{flag.Name} {flag.ValueName}");
            text.Append("      ").AppendLine(flag.Help);
        }

        return text.ToString();
    }

    private static ShieldOptions UpstreamOptions(ParsedFlags flags)
    {
        List<Uri> endpoints = [];
        foreach (string value in flags.Many("upstream-endpoints"))
        {
            endpoints.Add(UpstreamUrls.Parse("upstream-endpoints", value));
        }

        if (endpoints.Select(UpstreamUrls.UsesTls).Distinct().Count() > 1)
        {
            throw new ConfigurationException("--upstream-endpoints must all use TLS (https, unixs) or all not (http, unix)");
        }

        string? cert = OptionalFile(flags, "upstream-cert-file");
        string? key = OptionalFile(flags, "upstream-key-file");
        if ((cert is null) != (key is null))
        {
            throw new ConfigurationException("--upstream-cert-file and --upstream-key-file go together");
        }

        // Only the upstream part is used: it feeds the same channel (and TLS rules) as the proxy's.
        return new ShieldOptions
        {
            ListenClientUrls = [],
            AdvertiseClientUrls = [],
            CertFile = "",
            KeyFile = "",
            TrustedCaFile = "",
            UpstreamEndpoints = endpoints,
            UpstreamCertFile = cert,
            UpstreamKeyFile = key,
            UpstreamTrustedCaFile = OptionalFile(flags, "upstream-trusted-ca-file"),
        };
    }

    private static ulong ParseSlot(string text) =>
        ulong.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong slot)
            ? slot
            : throw new ConfigurationException($"--pkcs11-slot must be a slot number, not '{text}'");

    private static string RequiredFile(ParsedFlags flags, string name) =>
        OptionalFile(flags, name) ?? throw new ConfigurationException($"--{name} is required");

    private static string? OptionalFile(ParsedFlags flags, string name)
    {
        string? path = flags.Single(name);
        if (path is null)
        {
            return null;
        }

        return File.Exists(path) ? Path.GetFullPath(path) : throw new ConfigurationException($"--{name} {path}: file not found");
    }
}

/// <summary>A validated <c>keys</c> invocation.</summary>
/// <param name="Upstream">Set for <c>status --upstream-endpoints</c>: only its upstream fields are filled in.</param>
internal sealed record KeysCommandOptions(string Subcommand, Pkcs11Settings Pkcs11, ShieldOptions? Upstream);
