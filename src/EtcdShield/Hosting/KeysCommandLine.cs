using EtcdShield.Configuration;
using EtcdShield.Keys.Pkcs11;

namespace EtcdShield.Hosting;

/// <summary>
/// How the flags of <c>etcdshield keys create|rotate|status</c> (<see cref="ShieldCommands.KeysFlags"/>: the
/// proxy's own --pkcs11-* flags, and for status the --upstream-* flags) become <see cref="KeysCommandOptions"/>.
/// </summary>
internal static class KeysCommandLine
{
    /// <exception cref="ConfigurationException">Flags are missing or wrong: one message for each.</exception>
    public static KeysCommandOptions ToOptions(string subcommand, FlagValues flags)
    {
        ArgumentNullException.ThrowIfNull(flags);
        string module = RequiredFile(flags, "pkcs11-module");
        string? tokenLabel = flags.Single("pkcs11-token-label");
        ulong? slot = null;
        if (flags.Single("pkcs11-slot") is { } text)
        {
            if (ulong.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out ulong parsed))
            {
                slot = parsed;
            }
            else
            {
                flags.Error($"--pkcs11-slot must be a slot number, not '{text}'");
            }
        }

        if (flags.Has("pkcs11-token-label") == flags.Has("pkcs11-slot"))
        {
            flags.Error("give the token with exactly one of --pkcs11-token-label or --pkcs11-slot");
        }

        string? keyLabel = flags.Single("pkcs11-key-label");
        if (keyLabel is null)
        {
            flags.Error("--pkcs11-key-label is required");
        }
        else if (Pkcs11KeyLabel.Problem(keyLabel) is { } problem)
        {
            flags.Error($"--pkcs11-key-label: {problem}");
        }

        Pkcs11Settings settings = new()
        {
            ModulePath = module,
            TokenLabel = tokenLabel,
            Slot = slot,
            PinFile = RequiredFile(flags, "pkcs11-pin-file"),
            KeyLabel = keyLabel ?? "",
        };

        ShieldOptions? upstream = null;
        if (subcommand == "status" && flags.Has("upstream-endpoints"))
        {
            upstream = UpstreamOptions(flags);
        }
        else if (subcommand == "status" && ShieldCommands.KeysFlags("status").Any(f => f.Name.StartsWith("upstream-", StringComparison.Ordinal) && flags.Has(f.Name)))
        {
            flags.Error("--upstream-cert-file, --upstream-key-file and --upstream-trusted-ca-file need --upstream-endpoints");
        }

        flags.ThrowIfAny();
        return new KeysCommandOptions(subcommand, settings, upstream);
    }

    private static ShieldOptions UpstreamOptions(FlagValues flags)
    {
        List<Uri> endpoints = [];
        foreach (string value in flags.Many("upstream-endpoints"))
        {
            try
            {
                endpoints.Add(UpstreamUrls.Parse("upstream-endpoints", value));
            }
            catch (ConfigurationException e)
            {
                flags.Error(e.Message);
            }
        }

        if (endpoints.Select(UpstreamUrls.UsesTls).Distinct().Count() > 1)
        {
            flags.Error("--upstream-endpoints must all use TLS (https, unixs) or all not (http, unix)");
        }

        string? cert = OptionalFile(flags, "upstream-cert-file");
        string? key = OptionalFile(flags, "upstream-key-file");
        if (flags.Has("upstream-cert-file") != flags.Has("upstream-key-file"))
        {
            flags.Error("--upstream-cert-file and --upstream-key-file go together");
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

    private static string RequiredFile(FlagValues flags, string name)
    {
        if (!flags.Has(name))
        {
            flags.Error($"--{name} is required");
            return "";
        }

        return OptionalFile(flags, name) ?? "";
    }

    private static string? OptionalFile(FlagValues flags, string name)
    {
        string? path = flags.Single(name);
        if (path is null)
        {
            return null;
        }

        if (!File.Exists(path))
        {
            flags.Error($"--{name} {path}: file not found");
            return null;
        }

        return Path.GetFullPath(path);
    }
}

/// <summary>A validated <c>keys</c> invocation.</summary>
/// <param name="Upstream">Set for <c>status --upstream-endpoints</c>: only its upstream fields are filled in.</param>
internal sealed record KeysCommandOptions(string Subcommand, Pkcs11Settings Pkcs11, ShieldOptions? Upstream);
