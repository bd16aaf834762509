using System.Text;

namespace EtcdShield.Configuration;

/// <summary>
/// The flags of the proxy itself, in etcd's naming, and how they become <see cref="ShieldOptions"/>.
/// The same table drives parsing and <c>--help</c>, so the two cannot drift apart.
/// </summary>
internal static class ServeCommandLine
{
    public static readonly IReadOnlyList<Flag> Flags =
    [
        Flag.Repeated("listen-client-urls", "https://HOST:PORT[,...]", "Addresses to accept etcd clients on (mutual TLS; https only)."),
        Flag.Repeated("advertise-client-urls", "URL[,...]", "Client URLs reported to clients in Cluster member lists, so they never learn etcd's own address. Default: the listen URLs."),
        Flag.Single("cert-file", "FILE", "PEM certificate (chain) the proxy presents to clients."),
        Flag.Single("key-file", "FILE", "PEM private key for --cert-file."),
        Flag.Single("trusted-ca-file", "FILE", "PEM bundle of CAs that client certificates must chain to. A client certificate is always required."),
        Flag.Repeated("upstream-endpoints", "URL[,...]", "etcd members to relay to (default http://127.0.0.1:2379): http:// or https://HOST:PORT, or a unix socket, unix:///abs/path or etcd's unix://NAME:PORT (the file NAME:PORT in the current directory), unixs:// for TLS over it. The first reachable one is used; others take over when it fails."),
        Flag.Single("upstream-cert-file", "FILE", "PEM client certificate the proxy presents to etcd (https upstreams)."),
        Flag.Single("upstream-key-file", "FILE", "PEM private key for --upstream-cert-file."),
        Flag.Single("upstream-trusted-ca-file", "FILE", "PEM bundle of CAs that etcd's server certificate must chain to (https upstreams)."),
        Flag.Repeated("allow-cn", "NAME", "Admit client certificates with this subject common name as an administrator: every method (Auth, Snapshot, Member* included), every key and every lease. Repeatable."),
        Flag.Repeated("allow-dns", "NAME", "Admit client certificates with this DNS subject alternative name as an administrator, like --allow-cn. Repeatable."),
        Flag.Repeated("allow-uri", "URI", "Admit client certificates with this URI SAN (e.g. a SPIFFE ID) as an administrator, like --allow-cn; '*' matches one path segment, a trailing '/**' any rest. Repeatable."),
        Flag.Single("policy-file", "FILE", "YAML policy: identities (by CN, DNS/URI SAN, OU or SHA-256 fingerprint) and what each may do (methods, key ranges). Reloaded when it changes. The --allow-* flags add administrator identities after the policy's own; '*' in the file grants only unprivileged methods."),
        Flag.Single("client-crl-file", "FILE", "PEM or DER certificate revocation list(s), signed by a CA in --trusted-ca-file; revoked client certificates are refused. Reloaded when it changes."),
        Flag.Single("tls-min-version", "1.2|1.3", "Lowest TLS version offered to clients (default 1.2). Cipher suites are AEAD only."),
        Flag.Single("reload-interval", "DURATION", "How often certificate, CA, CRL and policy files are checked for changes (default 5s); SIGHUP checks at once."),
        Flag.Single("cert-expiry-warning", "DURATION", "Warn in the log and report /health degraded when a certificate expires within this (default 720h)."),
        Flag.Single("audit-log", "FILE|-", "Write one JSON line per request (identity, peer, method, keys, outcome, latency; never values) to FILE, or to stdout with '-'."),
        Flag.Single("audit-log-max-size", "MB", "Rotate the audit file when it reaches this size (default 100)."),
        Flag.Single("audit-log-max-backups", "N", "Rotated audit files to keep (default 5)."),
        Flag.Switch("audit-hash-keys", "Write the SHA-256 of keys instead of the keys, in the audit log and in log lines (clients are still told the key)."),
        Flag.Single("metrics-listen-url", "http://HOST:PORT", "Serve /health and /metrics (Prometheus) here, plain HTTP."),
        Flag.Repeated("cors-allowed-origins", "ORIGIN[,...]", "Answer browsers on these origins (scheme://host[:port], or '*' for any) with CORS headers on the client URLs, as etcd's --cors does: preflights are answered by the proxy. Default: none, no CORS headers at all."),
        Flag.Switch("no-encryption", "Relay values exactly as sent, unencrypted. Without it the proxy refuses to start unless a key provider is configured."),
        Flag.Single("encryption-key-file", "FILE", "DEVELOPMENT ONLY: a base64 32-byte key-encryption key in a file. Use an HSM in production."),
        Flag.Repeated("retired-encryption-key-file", "FILE", "DEVELOPMENT ONLY: older --encryption-key-file keys that still decrypt existing values (until migrate has re-encrypted them). Repeatable."),
        Flag.Single("pkcs11-module", "PATH", "PKCS#11 module of the HSM holding the key-encryption key, e.g. /usr/lib/softhsm/libsofthsm2.so."),
        Flag.Single("pkcs11-token-label", "LABEL", "Label of the HSM token holding the key-encryption key."),
        Flag.Single("pkcs11-slot", "ID", "Slot id of the token, instead of --pkcs11-token-label."),
        Flag.Single("pkcs11-pin-file", "FILE", "File holding the token's user PIN (never logged)."),
        Flag.Single("pkcs11-key-label", "LABEL", "Label of the AES-256 key-encryption key in the token."),
        Flag.Repeated("pkcs11-retired-key-label", "LABEL", "A key in the token outside the --pkcs11-key-label family that may still unwrap (never wrap) data keys of existing values, until migrate has moved them. No other key in the token is trusted. Repeatable (or comma-separated)."),
        Flag.Single("kms-plugin-endpoint", "unix:///PATH.sock", "Kubernetes KMS v2 plugin that holds the key-encryption key."),
        Flag.Repeated("encrypt-prefix", "PREFIX", "Encrypt values only under these key prefixes (default: every key). Repeatable."),
        Flag.Repeated("legacy-plaintext-prefix", "PREFIX", "Migration window: under these prefixes, accept and return values that are not yet encrypted (counted in a metric). Repeatable."),
        Flag.Single("max-request-bytes", "BYTES", "etcd's --max-request-bytes; requests (after encryption) above it are refused before reaching etcd (default 1572864)."),
        Flag.Single("max-txn-ops", "N", "etcd's --max-txn-ops; a txn with more operations at one level is refused as etcd refuses it, before the proxy works on it (default 128). Set it to etcd's value."),
        Flag.Single("max-concurrent-streams", "N", "HTTP/2 streams per client connection (default 10000)."),
        Flag.Single("max-streams-per-identity", "N", "Open streams (Watch, LeaseKeepAlive, Observe, Snapshot) one policy identity may hold on this proxy process, each an upstream etcd stream (default 1000: kube-apiserver's etcd client multiplexes its watches and keep-alives over a few streams, so it stays far below; the count is per process). Past it a new stream gets RESOURCE_EXHAUSTED."),
        Flag.Single("max-streams-per-connection", "N", "Open streams one client connection may hold (default 1000); unary calls are limited by --max-concurrent-streams only. Past it a new stream gets RESOURCE_EXHAUSTED."),
        Flag.Single("shutdown-timeout", "DURATION", "On SIGTERM: how long in-flight unary calls may take to finish once the proxy stops accepting (default 10s); open streams end at once with UNAVAILABLE so clients move to another member."),
        Flag.Single("log-level", "LEVEL", "Trace, Debug, Information, Warning or Error (default Information)."),
        Flag.Switch("help", "Show this help."),
    ];

    public static ShieldOptions ToOptions(ParsedFlags flags)
    {
        var listen = Urls(flags, "listen-client-urls");
        if (listen.Count == 0)
        {
            throw new ConfigurationException("--listen-client-urls is required, e.g. --listen-client-urls https://127.0.0.1:23790");
        }

        foreach (var url in listen)
        {
            if (url.Scheme != Uri.UriSchemeHttps)
            {
                throw new ConfigurationException($"--listen-client-urls {url} must be https: EtcdShield only accepts clients over mutual TLS");
            }
        }

        var options = UpstreamAndKeys(flags) with
        {
            ListenClientUrls = listen,
            AdvertiseClientUrls = flags.Has("advertise-client-urls") ? Urls(flags, "advertise-client-urls") : listen,
            CertFile = RequiredFile(flags, "cert-file"),
            KeyFile = RequiredFile(flags, "key-file"),
            TrustedCaFile = RequiredFile(flags, "trusted-ca-file"),
            AllowCommonNames = flags.Many("allow-cn"),
            AllowDnsNames = flags.Many("allow-dns"),
            AllowUris = flags.Many("allow-uri"),
            PolicyFile = OptionalFile(flags, "policy-file"),
            ClientCrlFile = OptionalFile(flags, "client-crl-file"),
            TlsMinVersion = flags.Single("tls-min-version") is { } tls
                ? tls is "1.2" or "1.3" ? tls : throw new ConfigurationException($"--tls-min-version must be 1.2 or 1.3, not '{tls}'")
                : "1.2",
            ReloadInterval = flags.Duration("reload-interval", TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(100)),
            CertExpiryWarning = flags.Duration("cert-expiry-warning", TimeSpan.FromDays(30), TimeSpan.Zero),
            AuditLog = flags.Single("audit-log"),
            AuditLogMaxBytes = flags.Int("audit-log-max-size", 100, 1, 1_000_000) * 1024L * 1024,
            AuditLogMaxBackups = flags.Int("audit-log-max-backups", 5, 0, 1000),
            AuditHashKeys = flags.Switch("audit-hash-keys"),
            MetricsListenUrl = flags.Single("metrics-listen-url") is { } m ? Url("metrics-listen-url", m) : null,
            CorsAllowedOrigins = CorsOrigins(flags.Many("cors-allowed-origins")),
            MaxConcurrentStreams = flags.Int("max-concurrent-streams", 10_000, 1, int.MaxValue),
            MaxStreamsPerIdentity = flags.Int("max-streams-per-identity", ShieldOptions.DefaultMaxStreams, 1, int.MaxValue),
            MaxStreamsPerConnection = flags.Int("max-streams-per-connection", ShieldOptions.DefaultMaxStreams, 1, int.MaxValue),
            ShutdownTimeout = flags.Duration("shutdown-timeout", ShieldOptions.DefaultShutdownTimeout, TimeSpan.Zero),
            LogLevel = flags.Single("log-level") ?? "Information",
        };

        Validate(options);
        return options;
    }

    /// <summary>
    /// The settings shared by every command that talks to etcd and the key provider (the proxy, migrate, keys):
    /// upstream endpoints and TLS, key provider, encrypted prefixes and etcd's request limit.
    /// </summary>
    public static ShieldOptions UpstreamAndKeys(ParsedFlags flags)
    {
        var upstream = flags.Many("upstream-endpoints").Select(v => UpstreamUrls.Parse("upstream-endpoints", v)).ToList();
        if (upstream.Count == 0)
        {
            upstream = [new Uri("http://127.0.0.1:2379")];
        }

        if (upstream.Select(UpstreamUrls.UsesTls).Distinct().Count() > 1)
        {
            throw new ConfigurationException("--upstream-endpoints must all use TLS (https, unixs) or all not (http, unix)");
        }

        var options = new ShieldOptions
        {
            UpstreamEndpoints = upstream,
            UpstreamCertFile = OptionalFile(flags, "upstream-cert-file"),
            UpstreamKeyFile = OptionalFile(flags, "upstream-key-file"),
            UpstreamTrustedCaFile = OptionalFile(flags, "upstream-trusted-ca-file"),
            NoEncryption = flags.Switch("no-encryption"),
            EncryptionKeyFile = OptionalFile(flags, "encryption-key-file"),
            RetiredEncryptionKeyFiles = flags.Many("retired-encryption-key-file").Select(f => ExistingFile("retired-encryption-key-file", f)).ToList(),
            Pkcs11Module = OptionalFile(flags, "pkcs11-module"),
            Pkcs11TokenLabel = flags.Single("pkcs11-token-label"),
            Pkcs11Slot = flags.Single("pkcs11-slot") is { } slot ? ParseSlot(slot) : null,
            Pkcs11PinFile = OptionalFile(flags, "pkcs11-pin-file"),
            Pkcs11KeyLabel = flags.Single("pkcs11-key-label"),
            Pkcs11RetiredKeyLabels = flags.Many("pkcs11-retired-key-label"),
            KmsPluginEndpoint = flags.Single("kms-plugin-endpoint"),
            EncryptPrefixes = flags.Many("encrypt-prefix"),
            LegacyPlaintextPrefixes = flags.Many("legacy-plaintext-prefix"),
            MaxRequestBytes = flags.Int("max-request-bytes", ShieldOptions.DefaultMaxRequestBytes, 1024, 64 * 1024 * 1024),
            MaxTxnOps = flags.Int("max-txn-ops", ShieldOptions.DefaultMaxTxnOps, 1, 1_000_000),
        };
        ValidateUpstreamAndKeys(options);
        return options;
    }

    private static void Validate(ShieldOptions options)
    {
        if (options.AllowCommonNames.Count + options.AllowDnsNames.Count + options.AllowUris.Count == 0 && options.PolicyFile is null)
        {
            throw new ConfigurationException(
                "no client identity is allowed: give a --policy-file, or at least one --allow-cn, --allow-dns or --allow-uri " +
                "(a certificate signed by the trusted CA is not enough on its own)");
        }

        // The plain-HTTP metrics listener is told apart from the mutual-TLS client listeners by its port alone.
        if (options.MetricsListenUrl is { } metrics && (metrics.Port == 0 || options.ListenClientUrls.Any(u => u.Port == metrics.Port)))
        {
            throw new ConfigurationException($"--metrics-listen-url {metrics} needs a port of its own: not 0 and not the port of any --listen-client-urls");
        }

        if (!Enum.TryParse<Microsoft.Extensions.Logging.LogLevel>(options.LogLevel, ignoreCase: true, out _))
        {
            throw new ConfigurationException($"--log-level '{options.LogLevel}' is not one of Trace, Debug, Information, Warning, Error");
        }
    }

    private static void ValidateUpstreamAndKeys(ShieldOptions options)
    {
        if ((options.UpstreamCertFile is null) != (options.UpstreamKeyFile is null))
        {
            throw new ConfigurationException("--upstream-cert-file and --upstream-key-file go together");
        }

        if (!UpstreamUrls.UsesTls(options.UpstreamEndpoints[0]) && (options.UpstreamCertFile is not null || options.UpstreamTrustedCaFile is not null))
        {
            throw new ConfigurationException("--upstream-cert-file and --upstream-trusted-ca-file need TLS --upstream-endpoints (https or unixs)");
        }

        var providers = (options.EncryptionKeyFile is null ? 0 : 1) + (options.Pkcs11Module is null ? 0 : 1) + (options.KmsPluginEndpoint is null ? 0 : 1);
        if (options.NoEncryption && providers > 0)
        {
            throw new ConfigurationException("--no-encryption contradicts the key provider flags: choose one");
        }

        if (options.RetiredEncryptionKeyFiles.Count > 0 && options.EncryptionKeyFile is null)
        {
            throw new ConfigurationException("--retired-encryption-key-file goes with --encryption-key-file");
        }

        if (providers > 1)
        {
            throw new ConfigurationException("give exactly one key provider: --pkcs11-module, --kms-plugin-endpoint or --encryption-key-file");
        }

        if (!options.NoEncryption && providers == 0)
        {
            throw new ConfigurationException(
                "no key provider is configured, and EtcdShield never stores values in plaintext unless told to: " +
                "give --pkcs11-module (with --pkcs11-token-label, --pkcs11-pin-file, --pkcs11-key-label), " +
                "--kms-plugin-endpoint, --encryption-key-file (development only), or --no-encryption to relay values as sent");
        }

        if (options.Pkcs11Module is not null &&
            ((options.Pkcs11TokenLabel is null && options.Pkcs11Slot is null) || options.Pkcs11PinFile is null || options.Pkcs11KeyLabel is null))
        {
            throw new ConfigurationException("--pkcs11-module needs --pkcs11-token-label (or --pkcs11-slot), --pkcs11-pin-file and --pkcs11-key-label");
        }

        if (options.Pkcs11RetiredKeyLabels.Count > 0 && options.Pkcs11Module is null)
        {
            throw new ConfigurationException("--pkcs11-retired-key-label goes with --pkcs11-module");
        }

        if (options.KmsPluginEndpoint is { } kms && !kms.StartsWith("unix://", StringComparison.Ordinal))
        {
            throw new ConfigurationException($"--kms-plugin-endpoint {kms} must be a unix socket URL, e.g. unix:///var/run/kms.sock");
        }
    }

    public static string Help()
    {
        var text = new StringBuilder();
        text.AppendLine("EtcdShield: an encrypting, identity-checking mutual-TLS proxy for etcd v3.");
        text.AppendLine();
        text.AppendLine("Usage: EtcdShield [flags]              run the proxy");
        text.AppendLine("       EtcdShield keys create|rotate|status [flags]   manage the KEK in the HSM (--help for flags)");
        text.AppendLine("       EtcdShield migrate [flags]      re-encrypt stored values under the current KEK (--help for flags)");
        text.AppendLine();
        text.AppendLine("Flags (--name value or --name=value):");
        foreach (var flag in Flags)
        {
            var head = flag.Arity == FlagArity.Switch ? $"  --{flag.Name}" : $"  --{flag.Name} {flag.ValueName}";
            text.AppendLine(head);
            text.Append("      ").AppendLine(flag.Help);
        }

        return text.ToString();
    }

    private static ulong ParseSlot(string text) =>
        ulong.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var slot)
            ? slot
            : throw new ConfigurationException($"--pkcs11-slot must be a slot number, not '{text}'");

    /// <summary>
    /// Each origin as a browser sends it in its Origin header (a lower-case scheme and host, the port only when not
    /// the scheme's default, no path), or "*": anything else could never match and would leave CORS silently off.
    /// Every bad origin is named at once.
    /// </summary>
    private static List<string> CorsOrigins(IReadOnlyList<string> origins)
    {
        var bad = origins.Where(o => o != "*" && !IsOrigin(o)).ToList();
        if (bad.Count > 0)
        {
            throw new ConfigurationException(
                $"--cors-allowed-origins: {string.Join(", ", bad.Select(o => $"'{o}'"))} {(bad.Count == 1 ? "is not an origin" : "are not origins")}: " +
                "give scheme://host[:port] as browsers send it (e.g. https://app.example.com:8443; no path, no default port), or '*' for any");
        }

        return [.. origins.Distinct(StringComparer.Ordinal)];
    }

    private static bool IsOrigin(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri)
        && uri.Host.Length > 0
        && uri.UserInfo.Length == 0
        && string.Equals(text, uri.GetLeftPart(UriPartial.Authority), StringComparison.Ordinal);

    private static List<Uri> Urls(ParsedFlags flags, string name) =>
        flags.Many(name).Select(v => Url(name, v)).ToList();

    private static Uri Url(string flag, string value)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) ||
            (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ConfigurationException($"--{flag} '{value}' is not a URL like https://127.0.0.1:2379");
        }

        return uri;
    }

    private static string RequiredFile(ParsedFlags flags, string name) =>
        OptionalFile(flags, name) ?? throw new ConfigurationException($"--{name} is required");

    private static string? OptionalFile(ParsedFlags flags, string name) =>
        flags.Single(name) is { } path ? ExistingFile(name, path) : null;

    private static string ExistingFile(string name, string path)
    {
        if (!File.Exists(path))
        {
            throw new ConfigurationException($"--{name} {path}: file not found");
        }

        return Path.GetFullPath(path);
    }
}
