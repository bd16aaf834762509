namespace EtcdShield.Configuration;

/// <summary>
/// The flags of the proxy itself, in etcd's naming, and how they become <see cref="ShieldOptions"/>.
/// The same table drives parsing and <c>--help</c>, so the two cannot drift apart.
/// </summary>
internal static class ServeCommandLine
{
    /// <summary>The defaults, from <see cref="ShieldOptions"/> alone: parsing falls back to them and --help shows them.</summary>
    private static readonly ShieldOptions Defaults = new();

    public static readonly IReadOnlyList<Flag> Flags =
    [
        Flag.Repeated("listen-client-urls", "https://HOST:PORT[,...]", "Addresses to accept etcd clients on (mutual TLS; https only)."),
        Flag.Repeated("advertise-client-urls", "URL[,...]", "Client URLs reported to clients in Cluster member lists, so they never learn etcd's own address. Default: the listen URLs."),
        Flag.Single("cert-file", "FILE", "PEM certificate (chain) the proxy presents to clients."),
        Flag.Single("key-file", "FILE", "PEM private key for --cert-file."),
        Flag.Single("trusted-ca-file", "FILE", "PEM bundle of CAs that client certificates must chain to. A client certificate is always required."),
        Flag.Repeated("upstream-endpoints", "URL[,...]", $"etcd members to relay to (default {string.Join(',', Defaults.UpstreamEndpoints.Select(u => u.OriginalString))}): http:// or https://HOST:PORT, or a unix socket, unix:///abs/path or etcd's unix://NAME:PORT (the file NAME:PORT in the current directory), unixs:// for TLS over it. The first reachable one is used; others take over when it fails."),
        Flag.Single("upstream-cert-file", "FILE", "PEM client certificate the proxy presents to etcd (https upstreams)."),
        Flag.Single("upstream-key-file", "FILE", "PEM private key for --upstream-cert-file."),
        Flag.Single("upstream-trusted-ca-file", "FILE", "PEM bundle of CAs that etcd's server certificate must chain to (https upstreams)."),
        Flag.Repeated("allow-cn", "NAME", "Admit client certificates with this subject common name as an administrator: every method (Auth, Snapshot, Member* included), every key and every lease. Repeatable."),
        Flag.Repeated("allow-dns", "NAME", "Admit client certificates with this DNS subject alternative name as an administrator, like --allow-cn. Repeatable."),
        Flag.Repeated("allow-uri", "URI", "Admit client certificates with this URI SAN (e.g. a SPIFFE ID) as an administrator, like --allow-cn; '*' matches one path segment, a trailing '/**' any rest. Repeatable."),
        Flag.Single("policy-file", "FILE", "YAML policy: identities (by CN, DNS/URI SAN, OU or SHA-256 fingerprint) and what each may do (methods, key ranges). Reloaded when it changes. The --allow-* flags add administrator identities after the policy's own; '*' in the file grants only unprivileged methods."),
        Flag.Single("client-crl-file", "FILE", "PEM or DER certificate revocation list(s), signed by a CA in --trusted-ca-file; revoked client certificates are refused. Reloaded when it changes."),
        Flag.Single("tls-min-version", "1.2|1.3", $"Lowest TLS version offered to clients (default {Defaults.TlsMinVersion}). Cipher suites are AEAD only."),
        Flag.Single("reload-interval", "DURATION", $"How often certificate, CA, CRL and policy files are checked for changes (default {FlagValues.FormatDuration(Defaults.ReloadInterval)}); SIGHUP checks at once."),
        Flag.Single("cert-expiry-warning", "DURATION", $"Warn in the log and report /health degraded when a certificate expires within this (default {FlagValues.FormatDuration(Defaults.CertExpiryWarning)})."),
        Flag.Single("audit-log", "FILE|-", "Write one JSON line per request (identity, peer, method, keys, outcome, latency; never values) to FILE, or to stdout with '-'."),
        Flag.Single("audit-log-max-size", "MB", $"Rotate the audit file when it reaches this size (default {Defaults.AuditLogMaxBytes / (1024 * 1024)})."),
        Flag.Single("audit-log-max-backups", "N", $"Rotated audit files to keep (default {Defaults.AuditLogMaxBackups})."),
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
        Flag.Repeated("rollback-protection-prefix", "PREFIX", "Seal values under these (encrypted) prefixes bound to their place in the key's history, so an older value put back into etcd directly is refused (DATA_LOSS). Writes there are committed under a guard (a read and a txn). Existing values: run migrate with the same flag. Repeatable."),
        Flag.Repeated("legacy-unbound-prefix", "PREFIX", "Migration window for --rollback-protection-prefix: under these prefixes, still accept values sealed before protection was turned on (bound to their key only). Repeatable."),
        Flag.Single("max-request-bytes", "BYTES", $"etcd's --max-request-bytes; requests (after encryption) above it are refused before reaching etcd (default {Defaults.MaxRequestBytes})."),
        Flag.Single("max-txn-ops", "N", $"etcd's --max-txn-ops; a txn with more operations at one level is refused as etcd refuses it, before the proxy works on it (default {Defaults.MaxTxnOps}). Set it to etcd's value."),
        Flag.Single("max-concurrent-streams", "N", $"HTTP/2 streams per client connection (default {Defaults.MaxConcurrentStreams})."),
        Flag.Single("max-streams-per-identity", "N", $"Open streams (Watch, LeaseKeepAlive, Observe, Snapshot) one policy identity may hold on this proxy process, each an upstream etcd stream (default {Defaults.MaxStreamsPerIdentity}: kube-apiserver's etcd client multiplexes its watches and keep-alives over a few streams, so it stays far below; the count is per process). Past it a new stream gets RESOURCE_EXHAUSTED."),
        Flag.Single("max-streams-per-connection", "N", $"Open streams one client connection may hold (default {Defaults.MaxStreamsPerConnection}); unary calls are limited by --max-concurrent-streams only. Past it a new stream gets RESOURCE_EXHAUSTED."),
        Flag.Single("shutdown-timeout", "DURATION", $"On SIGTERM: how long in-flight unary calls may take to finish once the proxy stops accepting (default {FlagValues.FormatDuration(Defaults.ShutdownTimeout)}); open streams end at once with UNAVAILABLE so clients move to another member."),
        Flag.Switch("watch-sharing", $"Client watches of the same range share one upstream etcd watch, each event decrypted and encoded once (default {Defaults.WatchSharing.ToString().ToLowerInvariant()}); --watch-sharing=false relays one upstream watch stream per client stream."),
        Flag.Single("watch-queue-bytes", "BYTES", $"Responses queued for one client watch stream (default {Defaults.WatchQueueBytes}); past it its slowest watch moves to its own upstream watch instead of holding the others up."),
        Flag.Single("watch-buffer-bytes", "BYTES", $"Queued watch responses and shared watch histories of all streams together (default {Defaults.WatchBufferBytes})."),
        Flag.Single("watch-progress-notify-interval", "DURATION", $"How often a progress_notify watch without events is told its revision (default {FlagValues.FormatDuration(Defaults.WatchProgressNotifyInterval)}, etcd's)."),
        Flag.Single("serializable-cache-size", "BYTES", $"Bytes of etcd's answers to serializable ranges kept, sealed as etcd stores them, and kept current by one watch of the whole keyspace (default {Defaults.SerializableCacheSize}, 64 MiB; 0 turns the cache off). See docs/serializable-cache.md."),
        Flag.Single("otlp-endpoint", "URL", "Send traces (OpenTelemetry, OTLP) to this collector, e.g. http://127.0.0.1:4317: a span per request and child spans for etcd calls, data-key unwraps and txn guard retries, joining the trace of a client's W3C traceparent and passing it on to etcd. Spans name the method, identity, number of keys and outcome, never a key or a value. Default: none, tracing off."),
        Flag.Single("otlp-protocol", "grpc|http/protobuf", $"OTLP transport for --otlp-endpoint (default {Defaults.OtlpProtocol}); with http/protobuf an endpoint without a path gets /v1/traces."),
        Flag.Single("trace-sampling-ratio", "FLOAT", "With --otlp-endpoint: the fraction (0 to 1) of requests without a sampled client trace that start a trace of their own (default 0: only clients' sampled traces are followed, as etcd's tracing does). A client's traceparent decides for its request."),
        Flag.Single("log-format", "text|json", "The log on stdout: text, one line per event (default), or json, one JSON object per line with etcd's zap keys (level, ts, logger, msg) and the event's fields. The audit log is separate."),
        Flag.Single("log-level", "LEVEL", $"Trace, Debug, Information, Warning or Error (default {Defaults.LogLevel})."),
    ];

    /// <summary>The proxy's options, or every problem with them at once.</summary>
    /// <exception cref="ConfigurationException">Some flags are wrong or missing: one message per problem.</exception>
    public static ShieldOptions ToOptions(FlagValues flags)
    {
        ArgumentNullException.ThrowIfNull(flags);
        var listen = Urls(flags, "listen-client-urls");
        // Given but empty ("", "," or a blank variable's rendering) is missing too: with no endpoint of ours,
        // Kestrel would fall back to plain http://localhost:5000. A bad URL has its own message.
        if (flags.Many("listen-client-urls").Count == 0)
        {
            flags.Error("--listen-client-urls is required, e.g. --listen-client-urls https://127.0.0.1:23790");
        }

        foreach (var url in listen.Where(u => u.Scheme != Uri.UriSchemeHttps))
        {
            flags.Error($"--listen-client-urls {url} must be https: EtcdShield only accepts clients over mutual TLS");
        }

        var tls = flags.Single("tls-min-version") ?? Defaults.TlsMinVersion;
        if (tls is not ("1.2" or "1.3"))
        {
            flags.Error($"--tls-min-version must be 1.2 or 1.3, not '{tls}'");
        }

        var options = ReadUpstreamAndKeys(flags) with
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
            TlsMinVersion = tls,
            ReloadInterval = flags.Duration("reload-interval", Defaults.ReloadInterval, TimeSpan.FromMilliseconds(100)),
            CertExpiryWarning = flags.Duration("cert-expiry-warning", Defaults.CertExpiryWarning, TimeSpan.Zero),
            AuditLog = flags.Single("audit-log"),
            AuditLogMaxBytes = flags.Int("audit-log-max-size", (int)(Defaults.AuditLogMaxBytes / (1024 * 1024)), 1, 1_000_000) * 1024L * 1024,
            AuditLogMaxBackups = flags.Int("audit-log-max-backups", Defaults.AuditLogMaxBackups, 0, 1000),
            AuditHashKeys = flags.Switch("audit-hash-keys"),
            MetricsListenUrl = flags.Single("metrics-listen-url") is { } m ? Url(flags, "metrics-listen-url", m) : null,
            CorsAllowedOrigins = CorsOrigins(flags, flags.Many("cors-allowed-origins")),
            MaxConcurrentStreams = flags.Int("max-concurrent-streams", Defaults.MaxConcurrentStreams, 1, int.MaxValue),
            MaxStreamsPerIdentity = flags.Int("max-streams-per-identity", Defaults.MaxStreamsPerIdentity, 1, int.MaxValue),
            MaxStreamsPerConnection = flags.Int("max-streams-per-connection", Defaults.MaxStreamsPerConnection, 1, int.MaxValue),
            ShutdownTimeout = flags.Duration("shutdown-timeout", Defaults.ShutdownTimeout, TimeSpan.Zero),
            WatchSharing = flags.Has("watch-sharing") ? flags.Switch("watch-sharing") : Defaults.WatchSharing,
            WatchQueueBytes = flags.Int("watch-queue-bytes", Defaults.WatchQueueBytes, 64 * 1024, int.MaxValue),
            WatchBufferBytes = flags.Int("watch-buffer-bytes", (int)Defaults.WatchBufferBytes, 1024 * 1024, int.MaxValue),
            WatchProgressNotifyInterval = flags.Duration("watch-progress-notify-interval", Defaults.WatchProgressNotifyInterval, TimeSpan.FromMilliseconds(100)),
            SerializableCacheSize = flags.Int("serializable-cache-size", (int)Defaults.SerializableCacheSize, 0, int.MaxValue),
            OtlpEndpoint = flags.Single("otlp-endpoint") is { } otlp ? Url(flags, "otlp-endpoint", otlp) : null,
            OtlpProtocol = flags.Single("otlp-protocol") ?? Defaults.OtlpProtocol,
            TraceSamplingRatio = Ratio(flags, "trace-sampling-ratio", Defaults.TraceSamplingRatio),
            LogLevel = flags.Single("log-level") ?? Defaults.LogLevel,
            LogFormat = flags.Single("log-format") ?? Defaults.LogFormat,
        };

        Validate(flags, options);
        ValidateTracing(flags, options);
        ValidateUpstreamAndKeys(flags, options);
        flags.ThrowIfAny();
        return options;
    }

    /// <summary>
    /// The settings shared by every command that talks to etcd and the key provider (the proxy, migrate, keys):
    /// upstream endpoints and TLS, key provider, encrypted prefixes and etcd's request limit.
    /// </summary>
    /// <exception cref="ConfigurationException">Some flags are wrong or missing: one message per problem.</exception>
    public static ShieldOptions UpstreamAndKeys(FlagValues flags)
    {
        ArgumentNullException.ThrowIfNull(flags);
        var options = ReadUpstreamAndKeys(flags);
        ValidateUpstreamAndKeys(flags, options);
        flags.ThrowIfAny();
        return options;
    }

    private static ShieldOptions ReadUpstreamAndKeys(FlagValues flags)
    {
        if (flags.Has("upstream-endpoints") && flags.Many("upstream-endpoints").Count == 0)
        {
            // Not etcd's default in its place: a blanked-out socket URL must not become plain TCP to 127.0.0.1:2379.
            flags.Error("--upstream-endpoints was given no URL; leave it out for the default or name the members");
        }

        var upstream = new List<Uri>();
        foreach (var value in flags.Many("upstream-endpoints"))
        {
            try
            {
                upstream.Add(UpstreamUrls.Parse("upstream-endpoints", value));
            }
            catch (ConfigurationException e)
            {
                flags.Error(e.Message);
            }
        }

        if (upstream.Select(UpstreamUrls.UsesTls).Distinct().Count() > 1)
        {
            flags.Error("--upstream-endpoints must all use TLS (https, unixs) or all not (http, unix)");
        }

        return new ShieldOptions
        {
            UpstreamEndpoints = upstream.Count > 0 ? upstream : Defaults.UpstreamEndpoints,
            UpstreamCertFile = OptionalFile(flags, "upstream-cert-file"),
            UpstreamKeyFile = OptionalFile(flags, "upstream-key-file"),
            UpstreamTrustedCaFile = OptionalFile(flags, "upstream-trusted-ca-file"),
            NoEncryption = flags.Switch("no-encryption"),
            EncryptionKeyFile = OptionalFile(flags, "encryption-key-file"),
            RetiredEncryptionKeyFiles = [.. flags.Many("retired-encryption-key-file").Select(f => ExistingFile(flags, "retired-encryption-key-file", f)).OfType<string>()],
            Pkcs11Module = OptionalFile(flags, "pkcs11-module"),
            Pkcs11TokenLabel = flags.Single("pkcs11-token-label"),
            Pkcs11Slot = flags.Single("pkcs11-slot") is { } slot ? ParseSlot(flags, slot) : null,
            Pkcs11PinFile = OptionalFile(flags, "pkcs11-pin-file"),
            Pkcs11KeyLabel = flags.Single("pkcs11-key-label"),
            Pkcs11RetiredKeyLabels = flags.Many("pkcs11-retired-key-label"),
            KmsPluginEndpoint = flags.Single("kms-plugin-endpoint"),
            EncryptPrefixes = flags.Many("encrypt-prefix"),
            LegacyPlaintextPrefixes = flags.Many("legacy-plaintext-prefix"),
            RollbackProtectionPrefixes = flags.Many("rollback-protection-prefix"),
            LegacyUnboundPrefixes = flags.Many("legacy-unbound-prefix"),
            MaxRequestBytes = flags.Int("max-request-bytes", Defaults.MaxRequestBytes, 1024, 64 * 1024 * 1024),
            MaxTxnOps = flags.Int("max-txn-ops", Defaults.MaxTxnOps, 1, 1_000_000),
        };
    }

    private static void Validate(FlagValues flags, ShieldOptions options)
    {
        if (options.AllowCommonNames.Count + options.AllowDnsNames.Count + options.AllowUris.Count == 0 && options.PolicyFile is null && !flags.Has("policy-file"))
        {
            flags.Error(
                "no client identity is allowed: give a --policy-file, or at least one --allow-cn, --allow-dns or --allow-uri " +
                "(a certificate signed by the trusted CA is not enough on its own)");
        }

        // The plain-HTTP metrics listener is told apart from the mutual-TLS client listeners by its port alone.
        if (options.MetricsListenUrl is { } metrics && (metrics.Port == 0 || options.ListenClientUrls.Any(u => u.Port == metrics.Port)))
        {
            flags.Error($"--metrics-listen-url {metrics} needs a port of its own: not 0 and not the port of any --listen-client-urls");
        }

        if (!Enum.TryParse<Microsoft.Extensions.Logging.LogLevel>(options.LogLevel, ignoreCase: true, out _))
        {
            flags.Error($"--log-level '{options.LogLevel}' is not one of Trace, Debug, Information, Warning, Error");
        }

        if (options.LogFormat is not (ShieldOptions.TextLogFormat or ShieldOptions.JsonLogFormat))
        {
            flags.Error($"--log-format must be text or json, not '{options.LogFormat}'");
        }
    }

    private static void ValidateTracing(FlagValues flags, ShieldOptions options)
    {
        if (options.OtlpProtocol is not ("grpc" or "http/protobuf"))
        {
            flags.Error($"--otlp-protocol must be grpc or http/protobuf, not '{options.OtlpProtocol}'");
        }

        // Without an endpoint there is no tracing at all: a ratio or a protocol alone would promise spans that never go anywhere.
        if (!flags.Has("otlp-endpoint") && (flags.Has("otlp-protocol") || flags.Has("trace-sampling-ratio")))
        {
            flags.Error("--otlp-protocol and --trace-sampling-ratio go with --otlp-endpoint");
        }

        if (options.OtlpEndpoint is { } endpoint && options.OtlpProtocol == "grpc" && endpoint.AbsolutePath != "/")
        {
            flags.Error($"--otlp-endpoint {endpoint} must have no path with --otlp-protocol grpc (the service path is OTLP's own)");
        }
    }

    private static double Ratio(FlagValues flags, string name, double defaultValue)
    {
        var text = flags.Single(name);
        if (text is null)
        {
            return defaultValue;
        }

        if (!double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var ratio) || !(ratio is >= 0 and <= 1))
        {
            flags.Error($"--{name} must be a number from 0 to 1, not '{text}'");
            return defaultValue;
        }

        return ratio;
    }

    private static void ValidateUpstreamAndKeys(FlagValues flags, ShieldOptions options)
    {
        if ((options.UpstreamCertFile is null) != (options.UpstreamKeyFile is null) && flags.Has("upstream-cert-file") != flags.Has("upstream-key-file"))
        {
            flags.Error("--upstream-cert-file and --upstream-key-file go together");
        }

        if (!UpstreamUrls.UsesTls(options.UpstreamEndpoints[0]) && (flags.Has("upstream-cert-file") || flags.Has("upstream-trusted-ca-file")))
        {
            flags.Error("--upstream-cert-file and --upstream-trusted-ca-file need TLS --upstream-endpoints (https or unixs)");
        }

        // Counted from the flags given, not the files found, so a missing key file is not also "no key provider".
        var providers = (flags.Has("encryption-key-file") ? 1 : 0) + (flags.Has("pkcs11-module") ? 1 : 0) + (flags.Has("kms-plugin-endpoint") ? 1 : 0);
        if (options.NoEncryption && providers > 0)
        {
            flags.Error("--no-encryption contradicts the key provider flags: choose one");
        }

        if (options.NoEncryption && options.RollbackProtectionPrefixes.Count > 0)
        {
            flags.Error("--rollback-protection-prefix binds encrypted values to their place; it needs encryption, not --no-encryption");
        }

        if (flags.Has("retired-encryption-key-file") && !flags.Has("encryption-key-file"))
        {
            flags.Error("--retired-encryption-key-file goes with --encryption-key-file");
        }

        if (providers > 1)
        {
            flags.Error("give exactly one key provider: --pkcs11-module, --kms-plugin-endpoint or --encryption-key-file");
        }

        if (!options.NoEncryption && providers == 0)
        {
            flags.Error(
                "no key provider is configured, and EtcdShield never stores values in plaintext unless told to: " +
                "give --pkcs11-module (with --pkcs11-token-label, --pkcs11-pin-file, --pkcs11-key-label), " +
                "--kms-plugin-endpoint, --encryption-key-file (development only), or --no-encryption to relay values as sent");
        }

        if (flags.Has("pkcs11-module") &&
            ((!flags.Has("pkcs11-token-label") && !flags.Has("pkcs11-slot")) || !flags.Has("pkcs11-pin-file") || !flags.Has("pkcs11-key-label")))
        {
            flags.Error("--pkcs11-module needs --pkcs11-token-label (or --pkcs11-slot), --pkcs11-pin-file and --pkcs11-key-label");
        }

        if (options.Pkcs11RetiredKeyLabels.Count > 0 && !flags.Has("pkcs11-module"))
        {
            flags.Error("--pkcs11-retired-key-label goes with --pkcs11-module");
        }

        if (options.KmsPluginEndpoint is { } kms && !kms.StartsWith("unix://", StringComparison.Ordinal))
        {
            flags.Error($"--kms-plugin-endpoint {kms} must be a unix socket URL, e.g. unix:///var/run/kms.sock");
        }
    }

    private static ulong? ParseSlot(FlagValues flags, string text)
    {
        if (ulong.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var slot))
        {
            return slot;
        }

        flags.Error($"--pkcs11-slot must be a slot number, not '{text}'");
        return null;
    }

    /// <summary>
    /// Each origin as a browser sends it in its Origin header (a lower-case scheme and host, the port only when not
    /// the scheme's default, no path), or "*": anything else could never match and would leave CORS silently off.
    /// Every bad origin is named at once.
    /// </summary>
    private static List<string> CorsOrigins(FlagValues flags, IReadOnlyList<string> origins)
    {
        var bad = origins.Where(o => o != "*" && !IsOrigin(o)).ToList();
        if (bad.Count > 0)
        {
            flags.Error(
                $"--cors-allowed-origins: {string.Join(", ", bad.Select(o => $"'{o}'"))} {(bad.Count == 1 ? "is not an origin" : "are not origins")}: " +
                "give scheme://host[:port] as browsers send it (e.g. https://app.example.com:8443; no path, no default port), or '*' for any");
        }

        return [.. origins.Except(bad).Distinct(StringComparer.Ordinal)];
    }

    private static bool IsOrigin(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri)
        && uri.Host.Length > 0
        && uri.UserInfo.Length == 0
        && string.Equals(text, uri.GetLeftPart(UriPartial.Authority), StringComparison.Ordinal);

    private static List<Uri> Urls(FlagValues flags, string name) =>
        [.. flags.Many(name).Select(v => Url(flags, name, v)).OfType<Uri>()];

    private static Uri? Url(FlagValues flags, string flag, string value)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) ||
            (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            flags.Error($"--{flag} '{value}' is not a URL like https://127.0.0.1:2379");
            return null;
        }

        return uri;
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

    private static string? OptionalFile(FlagValues flags, string name) =>
        flags.Single(name) is { } path ? ExistingFile(flags, name, path) : null;

    private static string? ExistingFile(FlagValues flags, string name, string path)
    {
        if (!File.Exists(path))
        {
            flags.Error($"--{name} {path}: file not found");
            return null;
        }

        return Path.GetFullPath(path);
    }
}
