using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Authorization;

/// <summary>The keys attached to a lease, looked up in etcd for the call being decided.</summary>
internal delegate Task<IReadOnlyList<ByteString>> LeaseKeysLookup(long leaseId);

/// <summary>
/// Where the policy meets each request: whether the caller may do exactly this, given the method's name and the
/// request. Denials are PERMISSION_DENIED naming the identity and the operation, never a value; each is counted
/// and logged here, and audited by whoever made the call.
/// </summary>
internal sealed partial class AccessGate
{
    private readonly KeyRedaction _keys;
    private readonly AuthorizationMetrics _metrics;
    private readonly ILogger _logger;

    /// <param name="keys">How log lines and audit records name keys (<c>--audit-hash-keys</c>).</param>
    public AccessGate(KeyRedaction keys, AuthorizationMetrics metrics, ILogger<AccessGate> logger)
    {
        _keys = keys;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>
    /// The reason the request may not go to etcd, or null when the caller's grants cover all of it. Without a
    /// request (a stream being opened, a method relayed as bytes), only whether the caller may use the method.
    /// </summary>
    public static string? Check(Caller caller, string method, IMessage? request) => Check(caller, method, request, null, KeyRedaction.None);

    /// <summary>
    /// Whether a method's authorization reads its request: methods governed by keys, and the lease methods, whose
    /// lease must be the caller's. Every other method is decided by its name alone.
    /// </summary>
    public static bool ReadsRequest(string method) =>
        MethodNames.GovernedByKeys.Contains(method) || method.StartsWith("Lease/", StringComparison.Ordinal);

    /// <summary>
    /// Decides a request; the key ranges it touches are added to <paramref name="accesses"/> on the way (for the
    /// audit record), when given.
    /// </summary>
    public AccessDenial? Authorize(Caller caller, string method, IMessage? request, List<KeyAccess>? accesses) =>
        Check(caller, method, request, accesses, KeyRedaction.None) is { } reason
            ? Deny(caller, method, reason, keys => Check(caller, method, request, null, keys))
            : null;

    /// <summary>
    /// Decides a request before it goes to etcd. Revoking a lease deletes every key attached to it, so the caller
    /// must be allowed to write each of them: they are looked up first, unless the caller may write every key.
    /// The denial does not say which key: the caller may not be allowed to read its name.
    /// </summary>
    public async ValueTask<AccessDenial?> AuthorizeAsync(Caller caller, string method, IMessage request, List<KeyAccess>? accesses, LeaseKeysLookup leaseKeys)
    {
        if (Authorize(caller, method, request, accesses) is { } denial)
        {
            return denial;
        }

        if (request is LeaseRevokeRequest revoke && caller.Identity is { Keys.Everything: false } identity
            && !AllAllowed(identity, await leaseKeys(revoke.ID).ConfigureAwait(false), KeyPermission.Write))
        {
            return Deny(caller, method, $"may not revoke lease {revoke.ID:x}: it holds keys the identity may not write");
        }

        return null;
    }

    /// <summary>
    /// Whether the caller may open (or keep open) a stream of this method, with <paramref name="request"/> for a
    /// server-streaming one; each watch on a watch stream is decided as it is created. A watch stream also needs a
    /// key to read: without one it could only hold an upstream etcd stream open.
    /// </summary>
    public AccessDenial? AuthorizeStream(Caller caller, string method, IMessage? request, List<KeyAccess>? accesses)
    {
        var reason = Check(caller, method, request, accesses, KeyRedaction.None);
        if (reason is null && method == "Watch/Watch" && caller.Identity is { Keys.ReadsAny: false })
        {
            reason = "may not watch: it may read no key";
        }

        return reason is null ? null : Deny(caller, method, reason, keys => Check(caller, method, request, null, keys) ?? reason);
    }

    /// <summary>LeaseTimeToLive with keys lists keys: the caller must be allowed to read each, as etcd requires.</summary>
    public AccessDenial? AuthorizeResponse(Caller caller, string method, IMessage response)
    {
        if (response is not LeaseTimeToLiveResponse { Keys.Count: > 0 } ttl || caller.Identity is not { Keys.Everything: false } identity)
        {
            return null;
        }

        return AllAllowed(identity, ttl.Keys, KeyPermission.Read)
            ? null
            : Deny(caller, method, $"may not list the keys of lease {ttl.ID:x}: it holds keys the identity may not read");
    }

    /// <summary>
    /// Whether a watch on <paramref name="range"/>, opened earlier, may go on: the same denial as the refusal of
    /// a new one when the caller may no longer read the range; null while it still may.
    /// </summary>
    public AccessDenial? AuthorizeWatch(Caller caller, string method, KeyRange range)
    {
        if (caller.Identity is { } identity && identity.Keys.Allows(range, KeyPermission.Read))
        {
            return null;
        }

        string Reason(KeyRedaction keys) => caller.Identity is null
            ? "matches no identity of the policy"
            : $"may not read {keys.Name(range)} ({method} watch)";
        return Deny(caller, method, Reason(KeyRedaction.None), Reason);
    }

    /// <summary>
    /// Whether the caller is admitted at all under the policy and client trust in force now, whatever it may call:
    /// enough for what carries no key and no value, such as etcd's plain HTTP endpoints (/version, /health).
    /// </summary>
    public AccessDenial? AuthorizeAdmission(Caller caller, string method) =>
        caller.Identity is null ? Deny(caller, method, NotAdmitted(caller)) : null;

    private static string NotAdmitted(Caller caller) =>
        caller.Revoked ? "has a certificate revoked by --client-crl-file"
        : caller.Untrusted ? "has a certificate from a CA no longer in --trusted-ca-file"
        : "matches no identity of the policy";

    /// <summary>The same decision as <see cref="Check(Caller, string, IMessage?)"/>, collecting accesses and naming keys as <paramref name="keys"/> does.</summary>
    private static string? Check(Caller caller, string method, IMessage? request, List<KeyAccess>? accesses, KeyRedaction keys)
    {
        if (caller.Identity is not { } identity)
        {
            return NotAdmitted(caller);
        }

        var governedByKeys = MethodNames.GovernedByKeys.Contains(method);
        if (!governedByKeys && !identity.MayCall(method))
        {
            return $"may not call {method}";
        }

        if (request is null)
        {
            return null;
        }

        if (governedByKeys && (accesses is not null || !identity.Keys.Everything))
        {
            var into = accesses ?? [];
            var from = into.Count;
            RequiredAccess.Collect(method, request, into);
            for (var i = from; i < into.Count && !identity.Keys.Everything; i++)
            {
                var access = into[i];
                if (!identity.Keys.Allows(access.Range, access.Permission))
                {
                    return $"may not {Verb(access.Permission)} {keys.Name(access.Range)} ({method} {access.Operation})";
                }
            }
        }

        return LeaseUses.Foreign(identity, method, request);
    }

    private static bool AllAllowed(PolicyIdentity identity, IEnumerable<ByteString> keys, KeyPermission permission) =>
        keys.All(key => identity.Keys.Allows(KeyRange.SingleKey(key.Span), permission));

    /// <summary>A denial whose reason names no key, so the audit and the log may record it as the client hears it.</summary>
    private AccessDenial Deny(Caller caller, string method, string reason) => Deny(caller, method, reason, _ => reason);

    /// <param name="reason">What the client is told, keys named.</param>
    /// <param name="recorded">The reason again with keys named as the audit and the log name them; only called when they differ.</param>
    private AccessDenial Deny(Caller caller, string method, string reason, Func<KeyRedaction, string?> recorded)
    {
        _metrics.Denied(method, caller.Identity?.Name ?? "(none)");
        // The same decision made twice gives a reason twice; should it not, the clear one must still not be logged.
        var logged = _keys.HashesKeys ? recorded(_keys) ?? "(reason withheld)" : reason;
        Log.Denied(_logger, caller.Peer, caller.Name, method, logged);
        var prefix = $"etcdshield: permission denied: identity \"{caller.Name}\" ";
        return new AccessDenial(new Status(StatusCode.PermissionDenied, prefix + reason), prefix + logged);
    }

    private static string Verb(KeyPermission permission) => permission switch
    {
        KeyPermission.Read => "read",
        KeyPermission.Write => "write",
        _ => "read and write",
    };

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.Denied, EventName = nameof(EventIds.Denied), Level = LogLevel.Warning, Message = "Denied {Peer} ({Identity}) {Method}: {Reason}")]
        public static partial void Denied(ILogger logger, string peer, string identity, string method, string reason);
    }
}
