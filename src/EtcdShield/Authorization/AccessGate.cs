using System.Diagnostics.Metrics;
using EtcdShield.Audit;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using EtcdShield.Reload;
using EtcdShield.Telemetry;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Connections.Features;

namespace EtcdShield.Authorization;

/// <summary>
/// Where the policy meets each request: who is calling, whether the policy lets them do exactly this, and the
/// audit record of the answer. Denials are PERMISSION_DENIED naming the identity and the operation, never a value.
/// </summary>
internal sealed partial class AccessGate
{
    private readonly ReloadableFiles<AccessPolicy> _policy;
    private readonly ReloadableFiles<Tls.ClientTrust> _trust;
    private readonly AuditLog _audit;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Counter<long> _denied;

    public AccessGate(ReloadableFiles<AccessPolicy> policy, ReloadableFiles<Tls.ClientTrust> trust, AuditLog audit, TimeProvider time, IMeterFactory meters, ILogger<AccessGate> logger)
    {
        _policy = policy;
        _trust = trust;
        _audit = audit;
        _time = time;
        _logger = logger;
        _denied = meters.Create(RelayMetrics.MeterName).CreateCounter<long>(
            "etcdshield.requests.denied", unit: "{request}", description: "Requests (and watches) the policy refused, by method and identity.");
    }

    public Caller CallerOf(ServerCallContext context)
    {
        var http = context.GetHttpContext();
        var policy = _policy.Current;
        if (http.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(ConnectionCaller.ItemKey, out var item) == true && item is ConnectionCaller connection)
        {
            return connection.Under(policy, _trust.Current);
        }

        // Only reached if the TLS layer did not leave the caller on the connection; the certificate still decides.
        var certificate = http.Connection.ClientCertificate;
        var identity = certificate is null ? Tls.ClientIdentity.Unknown : Tls.ClientIdentity.FromCertificate(certificate);
        return new Caller(identity, policy.Resolve(identity), policy, http.Connection.RemoteIpAddress + ":" + http.Connection.RemotePort);
    }

    /// <summary>
    /// The reason the request may not go to etcd, or null when the caller's grants cover all of it. Without a
    /// request (a stream being opened), only whether the caller may use the method at all.
    /// </summary>
    public static string? Check(Caller caller, string method, IMessage? request) => Check(caller, method, request, KeyRedaction.None);

    /// <summary>The same decision, with the keys of the reason named by <paramref name="keys"/>.</summary>
    private static string? Check(Caller caller, string method, IMessage? request, KeyRedaction keys)
    {
        if (caller.Identity is not { } identity)
        {
            return caller.Revoked ? "has a certificate revoked by --client-crl-file"
                : caller.Untrusted ? "has a certificate from a CA no longer in --trusted-ca-file"
                : "matches no identity of the policy";
        }

        if (!MethodNames.GovernedByKeys.Contains(method) && !identity.MayCall(method))
        {
            return $"may not call {method}";
        }

        if (request is null)
        {
            return null;
        }

        if (MethodNames.GovernedByKeys.Contains(method) && !identity.Keys.Everything)
        {
            var accesses = new List<KeyAccess>();
            RequiredAccess.Collect(method, request, accesses);
            foreach (var access in accesses)
            {
                if (!identity.Keys.Allows(access.Range, access.Permission))
                {
                    return $"may not {Verb(access.Permission)} {keys.Name(access.Range)} ({method} {access.Operation})";
                }
            }
        }

        return LeaseUses.Foreign(identity, method, request);
    }

    /// <summary>
    /// Whether the caller may open (or keep open) a stream of this method, with <paramref name="request"/> for a
    /// server-streaming one; each watch on a watch stream is checked as it is created. A watch stream also needs a
    /// key to read: without one it could only hold an upstream etcd stream open.
    /// </summary>
    public RpcException? AuthorizeStream(Caller caller, RelayedMethod method, IMessage? request = null)
    {
        var reason = Check(caller, method.Name, request);
        if (reason is null && IsWatch(method) && caller.Identity is { Keys.ReadsAny: false })
        {
            reason = "may not watch: it may read no key";
        }

        return reason is null ? null : Deny(caller, method.Name, reason, keys => Check(caller, method.Name, request, keys) ?? reason);
    }

    /// <summary>
    /// Checks a request before it goes to etcd. Revoking a lease deletes every key attached to it, so the caller
    /// must be allowed to write each of them: they are looked up first, unless the caller may write every key.
    /// The denial does not say which key: the caller may not be allowed to read its name.
    /// </summary>
    public async ValueTask<RpcException?> AuthorizeAsync(Caller caller, RelayedMethod method, IMessage request, RelayCall call)
    {
        if (Check(caller, method.Name, request) is { } reason)
        {
            return Deny(caller, method.Name, reason, keys => Check(caller, method.Name, request, keys));
        }

        if (request is LeaseRevokeRequest revoke && caller.Identity is { Keys.Everything: false } identity)
        {
            var attached = await call.Lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = revoke.ID, Keys = true }, call.Options).ConfigureAwait(false);
            if (!AllAllowed(identity, attached.Keys, KeyPermission.Write))
            {
                // Names no key: the caller may not be allowed to read the ones it holds.
                return Deny(caller, method.Name, $"may not revoke lease {revoke.ID:x}: it holds keys the identity may not write");
            }
        }

        return null;
    }

    /// <summary>LeaseTimeToLive with keys lists keys: the caller must be allowed to read each, as etcd requires.</summary>
    public RpcException? AuthorizeResponse(Caller caller, RelayedMethod method, IMessage response)
    {
        if (response is not LeaseTimeToLiveResponse { Keys.Count: > 0 } ttl || caller.Identity is not { Keys.Everything: false } identity)
        {
            return null;
        }

        return AllAllowed(identity, ttl.Keys, KeyPermission.Read)
            ? null
            : Deny(caller, method.Name, $"may not list the keys of lease {ttl.ID:x}: it holds keys the identity may not read");
    }

    /// <summary>
    /// Whether a stream can be answered by the proxy itself (a refused watch, a keep-alive for a lease the caller
    /// does not own), so that its writes must take turns; every other stream only relays etcd's answers.
    /// </summary>
    public static bool AnswersOnStream(RelayedMethod method) => IsWatch(method) || method.Name == "Lease/LeaseKeepAlive";

    /// <summary>A watch stream: its client may add and cancel watches on ranges while it is open.</summary>
    public static bool IsWatch(RelayedMethod method) => method.Name == "Watch/Watch";

    private static bool AllAllowed(PolicyIdentity identity, IEnumerable<ByteString> keys, KeyPermission permission) =>
        keys.All(key => identity.Keys.Allows(KeyRange.SingleKey(key.Span), permission));

    /// <summary>
    /// A message on an open stream that asks for more than the stream itself: a watch on a range, a keep-alive of
    /// a lease. Returns what to tell the client instead of forwarding it (etcd's own answer to a forbidden watch:
    /// created and cancelled at once, with the reason; to a foreign lease: as to an unknown one), or null to
    /// forward it. Other watches and leases on the same stream are not disturbed.
    /// </summary>
    public IMessage? RefuseOnStream(Caller caller, RelayedMethod method, IMessage request)
    {
        if (request is LeaseKeepAliveRequest keepAlive)
        {
            return RefuseKeepAlive(caller, method, keepAlive);
        }

        if (request is not WatchRequest { CreateRequest: { } create })
        {
            return null;
        }

        var started = _time.GetTimestamp();
        var denial = Check(caller, method.Name, request) is { } reason
            ? Deny(caller, method.Name, reason, keys => Check(caller, method.Name, request, keys))
            : null;
        if (_audit.Enabled)
        {
            var keys = new List<KeyAccess>();
            RequiredAccess.Collect(method.Name, request, keys);
            _audit.Record(new AuditEntry(_time.GetUtcNow(), caller, method.Name, keys, denial is not null, denial?.Recorded,
                denial is null ? StatusCode.OK : StatusCode.PermissionDenied, _time.GetElapsedTime(started)));
        }

        if (denial is null)
        {
            return null;
        }

        return new WatchResponse
        {
            Header = new ResponseHeader(),
            WatchId = create.WatchId,
            Created = true,
            Canceled = true,
            CancelReason = CancelReason(denial),
        };
    }

    /// <summary>
    /// A keep-alive for a lease the caller does not own is never forwarded: it is answered as etcd answers one for
    /// an unknown lease (its ID, TTL 0), which clientv3 reports as an expired lease.
    /// </summary>
    private LeaseKeepAliveResponse? RefuseKeepAlive(Caller caller, RelayedMethod method, LeaseKeepAliveRequest keepAlive)
    {
        if (Check(caller, method.Name, keepAlive) is not { } reason)
        {
            return null;
        }

        // The reason names a lease, never a key.
        _ = Deny(caller, method.Name, reason);
        return new LeaseKeepAliveResponse { Header = new ResponseHeader(), ID = keepAlive.ID, TTL = 0 };
    }

    /// <summary>
    /// The cancel_reason of a watch on <paramref name="range"/>, opened earlier, that the caller may no longer read
    /// (the same text as the refusal of a new one, audited like it); null while it still may.
    /// </summary>
    public string? RefuseWatch(Caller caller, RelayedMethod method, KeyRange range)
    {
        if (caller.Identity is { } identity && identity.Keys.Allows(range, KeyPermission.Read))
        {
            return null;
        }

        var access = new KeyAccess(range, KeyPermission.Read, "watch");
        string Reason(KeyRedaction keys) => caller.Identity is null
            ? "matches no identity of the policy"
            : $"may not {Verb(access.Permission)} {keys.Name(range)} ({method.Name} {access.Operation})";
        var denial = Deny(caller, method.Name, Reason(KeyRedaction.None), Reason);
        if (_audit.Enabled)
        {
            _audit.Record(new AuditEntry(_time.GetUtcNow(), caller, method.Name, [access], true, denial.Recorded, StatusCode.PermissionDenied, TimeSpan.Zero));
        }

        return CancelReason(denial);
    }

    // clientv3 turns this text into the error its watch channel reports.
    private static string CancelReason(RpcException denial) => $"rpc error: code = PermissionDenied desc = {denial.Status.Detail}";

    /// <summary>Writes the audit record of a finished call.</summary>
    public void Completed(Caller caller, RelayedMethod method, IMessage? request, bool denied, RpcException? failure, StatusCode code, TimeSpan elapsed)
    {
        if (!_audit.Enabled)
        {
            return;
        }

        var keys = new List<KeyAccess>();
        if (request is not null && request is not WatchRequest)
        {
            RequiredAccess.Collect(method.Name, request, keys);
        }

        _audit.Record(new AuditEntry(_time.GetUtcNow(), caller, method.Name, keys, denied, denied ? Recorded(failure) : null, code, elapsed));
    }

    /// <summary>
    /// A denial's reason as the record gives it: the gate's own denials carry it; any other failure's text may
    /// name keys, so with --audit-hash-keys only its code is recorded.
    /// </summary>
    private string? Recorded(RpcException? failure) =>
        failure is AccessDenial denial ? denial.Recorded : _audit.Keys.HashesKeys ? null : failure?.Status.Detail;

    /// <summary>A denial whose reason names no key, so the audit and the log may record it as the client hears it.</summary>
    private AccessDenial Deny(Caller caller, string method, string reason) => Deny(caller, method, reason, _ => reason);

    /// <param name="reason">What the client is told, keys named.</param>
    /// <param name="recorded">The reason again with keys named as the audit and the log name them; only called when they differ.</param>
    private AccessDenial Deny(Caller caller, string method, string reason, Func<KeyRedaction, string?> recorded)
    {
        _denied.Add(1, new KeyValuePair<string, object?>("method", method), new KeyValuePair<string, object?>("identity", caller.Identity?.Name ?? "(none)"));
        // The same decision made twice gives a reason twice; should it not, the clear one must still not be logged.
        var logged = _audit.Keys.HashesKeys ? recorded(_audit.Keys) ?? "(reason withheld)" : reason;
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
