namespace EtcdShield.Configuration;

/// <summary>
/// The commands of the executable and the flags of each, for the one parser (<see cref="ShieldCommandLine"/>).
/// The commands' own code lives with their feature; only their flags are here, so that a config file or an
/// environment can be checked against every command's flags at once.
/// </summary>
internal static class ShieldCommands
{
    public const string Serve = "serve";
    public const string Check = "check";
    public const string Keys = "keys";
    public const string Migrate = "migrate";

    private static readonly string[] Pkcs11FlagNames =
        ["pkcs11-module", "pkcs11-token-label", "pkcs11-slot", "pkcs11-pin-file", "pkcs11-key-label"];

    private static readonly string[] UpstreamFlagNames =
        ["upstream-endpoints", "upstream-cert-file", "upstream-key-file", "upstream-trusted-ca-file"];

    private static readonly string[] MigrateSharedFlagNames =
    [
        .. UpstreamFlagNames,
        "encryption-key-file", "retired-encryption-key-file", .. Pkcs11FlagNames,
        "pkcs11-retired-key-label", "kms-plugin-endpoint", "encrypt-prefix", "legacy-plaintext-prefix", "rollback-protection-prefix", "max-request-bytes", "log-level",
    ];

    /// <summary>migrate: the proxy's upstream and key provider flags (same names and help), and its own.</summary>
    public static readonly IReadOnlyList<Flag> MigrateFlags =
    [
        .. ServeCommandLine.Flags.Where(f => MigrateSharedFlagNames.Contains(f.Name)),
        Flag.Single("prefix", "PREFIX", "Only migrate keys under this prefix (default: every key)."),
        Flag.Switch("dry-run", "Report what would change; write nothing."),
        Flag.Single("batch-size", "N", "Keys read per range request (default 500)."),
    ];

    public static readonly ShieldCommandLine CommandLine = new(
        "EtcdShield: an encrypting, identity-checking mutual-TLS proxy for etcd v3. " +
        "Without a command it runs the proxy: 'etcdshield --listen-client-urls ...' is 'etcdshield serve --listen-client-urls ...'. " +
        ShieldCommandLine.Precedence,
        [
            new(Serve, "Run the proxy (the default command). Exit code 2 for bad flags, each problem on its own line. " + ShieldCommandLine.Precedence, ServeCommandLine.Flags),
            new(Check, "Validate a configuration without serving: the same flags as serve, one line per check, exit code 1 on any failure. " + ShieldCommandLine.Precedence, ServeCommandLine.Flags),
            new(Keys, "Manage the key-encryption key (KEK) in the HSM. Exit codes: 0 done, 1 the HSM or etcd failed (the message says why), 2 bad flags.", []),
            new("keys create", "Make version 1 of the KEK (labelled --pkcs11-key-label) in the token; refuses if it exists.", KeysFlags("create")),
            new("keys rotate", "Make the next version (LABEL#2, LABEL#3, ...). Running proxies wrap new data keys with it within 30 s; values under older versions keep decrypting while those stay in the token.", KeysFlags("rotate")),
            new("keys status", "List the versions in the token and which one is current; with --upstream-endpoints, also count the values and data keys in etcd under each KEK.", KeysFlags("status")),
            new(Migrate,
                "Re-encrypt every value in etcd under the current key-encryption key, online: each rewrite is guarded by the key's mod_revision, " +
                "so newer writes are never overwritten. Values already current are checked and skipped, so an interrupted run is resumed by running it again. " +
                "Plaintext is encrypted only under the --legacy-plaintext-prefix windows given here; elsewhere it is refused, listed, and the exit code is 1. " +
                ShieldCommandLine.Precedence,
                MigrateFlags),
        ],
        rootPath: Serve);

    /// <summary>keys: the proxy's own --pkcs11-* flags, and for status the --upstream-* flags to count values per KEK.</summary>
    public static IReadOnlyList<Flag> KeysFlags(string subcommand)
    {
        IEnumerable<string> names = subcommand == "status" ? [.. Pkcs11FlagNames, .. UpstreamFlagNames] : Pkcs11FlagNames;
        return [.. names.Select(n => ServeCommandLine.Flags.Single(f => f.Name == n))];
    }

    /// <summary>The process's environment, as the parser reads it.</summary>
    public static IReadOnlyDictionary<string, string> ProcessEnvironment() =>
        Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "", StringComparer.Ordinal);
}
