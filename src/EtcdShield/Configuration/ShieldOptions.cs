namespace EtcdShield.Configuration;

/// <summary>
/// Everything the proxy needs to start, parsed from the command line and validated once.
/// Immutable: a running proxy never sees half-applied settings.
/// </summary>
internal sealed record ShieldOptions
{
    /// <summary>etcd's default --max-request-bytes; encrypted values must still fit under it.</summary>
    public const int DefaultMaxRequestBytes = 1_572_864;

    /// <summary>etcd's default --max-txn-ops: the most compares, success ops or failure ops in one txn level.</summary>
    public const int DefaultMaxTxnOps = 128;

    // The serving settings are required by the proxy's command line, not here, so that commands which only
    // talk to etcd and the key provider (migrate, keys) can build options too.
    public IReadOnlyList<Uri> ListenClientUrls { get; init; } = [];
    public IReadOnlyList<Uri> AdvertiseClientUrls { get; init; } = [];
    public string CertFile { get; init; } = "";
    public string KeyFile { get; init; } = "";
    public string TrustedCaFile { get; init; } = "";

    public IReadOnlyList<Uri> UpstreamEndpoints { get; init; } = [new Uri("http://127.0.0.1:2379")];
    public string? UpstreamCertFile { get; init; }
    public string? UpstreamKeyFile { get; init; }
    public string? UpstreamTrustedCaFile { get; init; }

    public IReadOnlyList<string> AllowCommonNames { get; init; } = [];
    public IReadOnlyList<string> AllowDnsNames { get; init; } = [];
    public IReadOnlyList<string> AllowUris { get; init; } = [];
    public string? PolicyFile { get; init; }
    public string? ClientCrlFile { get; init; }

    /// <summary>"1.2" or "1.3".</summary>
    public string TlsMinVersion { get; init; } = "1.2";
    public TimeSpan ReloadInterval { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan CertExpiryWarning { get; init; } = TimeSpan.FromDays(30);

    /// <summary>A file path, "-" for standard output, or null for no audit log.</summary>
    public string? AuditLog { get; init; }
    public long AuditLogMaxBytes { get; init; } = 100L * 1024 * 1024;
    public int AuditLogMaxBackups { get; init; } = 5;
    public bool AuditHashKeys { get; init; }

    public Uri? MetricsListenUrl { get; init; }

    /// <summary>Browser origins (<c>scheme://host[:port]</c>, or "*") answered with CORS headers; empty turns CORS off.</summary>
    public IReadOnlyList<string> CorsAllowedOrigins { get; init; } = [];
    public bool NoEncryption { get; init; }
    public string? EncryptionKeyFile { get; init; }
    public IReadOnlyList<string> RetiredEncryptionKeyFiles { get; init; } = [];
    public string? Pkcs11Module { get; init; }
    public string? Pkcs11TokenLabel { get; init; }
    public ulong? Pkcs11Slot { get; init; }
    public string? Pkcs11PinFile { get; init; }
    public string? Pkcs11KeyLabel { get; init; }

    /// <summary>Labels outside the --pkcs11-key-label family that may still unwrap (values not yet migrated off them).</summary>
    public IReadOnlyList<string> Pkcs11RetiredKeyLabels { get; init; } = [];
    public string? KmsPluginEndpoint { get; init; }
    public IReadOnlyList<string> EncryptPrefixes { get; init; } = [];

    public IReadOnlyList<string> LegacyPlaintextPrefixes { get; init; } = [];

    /// <summary><c>--rollback-protection-prefix</c>: values there are sealed bound to their place in the key's history.</summary>
    public IReadOnlyList<string> RollbackProtectionPrefixes { get; init; } = [];

    /// <summary><c>--legacy-unbound-prefix</c>: migration window in which unbound (v1) values under a protected prefix are still read.</summary>
    public IReadOnlyList<string> LegacyUnboundPrefixes { get; init; } = [];

    public int MaxRequestBytes { get; init; } = DefaultMaxRequestBytes;

    /// <summary>The largest request message accepted: etcd's --max-request-bytes plus the 512 KiB of framing slack etcd allows.</summary>
    public static int MaxReceiveMessageBytes(int maxRequestBytes) => (int)Math.Min(int.MaxValue, maxRequestBytes + (512L * 1024));
    public int MaxTxnOps { get; init; } = DefaultMaxTxnOps;
    public int MaxConcurrentStreams { get; init; } = 10_000;

    /// <summary>
    /// Default of both stream limits: a kube-apiserver multiplexes its watches and keep-alives over a few streams,
    /// so a thousand is far above what it holds and still bounds what one identity can make the proxy hold.
    /// </summary>
    public const int DefaultMaxStreams = 1000;

    public int MaxStreamsPerIdentity { get; init; } = DefaultMaxStreams;
    public int MaxStreamsPerConnection { get; init; } = DefaultMaxStreams;
    /// <summary>How long in-flight unary calls may take to finish on SIGTERM, after the listeners have closed.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = DefaultShutdownTimeout;

    public static readonly TimeSpan DefaultShutdownTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Client watches of the same range share one upstream watch; false relays one upstream watch stream per client stream.</summary>
    public bool WatchSharing { get; init; } = true;

    /// <summary>What one client watch stream may have queued for it before its slowest watches are moved to their own upstream watch.</summary>
    public int WatchQueueBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>What all watch streams' queues and the shared watches' histories may hold together.</summary>
    public long WatchBufferBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>How often a progress_notify watch with no events is told how far it is; etcd's default interval.</summary>
    public TimeSpan WatchProgressNotifyInterval { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Bytes the serializable read cache may hold (docs/serializable-cache.md); 0 turns it off.</summary>
    public long SerializableCacheSize { get; init; } = DefaultSerializableCacheSize;

    public const long DefaultSerializableCacheSize = 64L * 1024 * 1024;

    /// <summary>The OTLP collector spans are sent to; null turns tracing off, so no span is even created.</summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>"grpc" or "http/protobuf".</summary>
    public string OtlpProtocol { get; init; } = "grpc";

    /// <summary>The fraction of requests without a client's sampling decision that are traced (0 to 1).</summary>
    public double TraceSamplingRatio { get; init; }

    public string LogLevel { get; init; } = "Information";

    /// <summary><c>--log-format</c>: <see cref="TextLogFormat"/> (one line per event, for people) or <see cref="JsonLogFormat"/> (zap's JSON lines, for log pipelines).</summary>
    public string LogFormat { get; init; } = TextLogFormat;

    public const string TextLogFormat = "text";
    public const string JsonLogFormat = "json";
}
