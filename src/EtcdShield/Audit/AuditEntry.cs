using EtcdShield.Authorization;

namespace EtcdShield.Audit;

/// <summary>One decision and its result: who, from where, what method on which keys, allowed or denied, how it ended.</summary>
internal readonly record struct AuditEntry(
    DateTimeOffset Time,
    Caller Caller,
    string Method,
    IReadOnlyList<KeyAccess> Keys,
    bool Denied,
    string? Reason,
    Grpc.Core.StatusCode Code,
    TimeSpan Latency);
