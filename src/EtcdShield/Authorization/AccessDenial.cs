using Grpc.Core;

namespace EtcdShield.Authorization;

/// <summary>
/// A PERMISSION_DENIED the gate decided, carrying the reason as the audit record and the log give it, which with
/// <c>--audit-hash-keys</c> names keys by their hash while the client's status still names them.
/// </summary>
internal sealed class AccessDenial(Status status, string recorded) : RpcException(status)
{
    /// <summary>The reason as written to the audit log and the proxy's log.</summary>
    public string Recorded { get; } = recorded;
}
