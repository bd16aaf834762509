using EtcdShield.Encryption;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.Mvccpb;
using EtcdShield.Protocol.V3lockpb;
using EtcdShield.Relay;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Concurrency;

/// <summary>
/// Lock, served by the proxy as etcd's own lock server serves it (a session on the caller's lease and a concurrency
/// mutex on <c>name/</c>), but through the proxy's KV path: etcd's server would write the owner key's empty value
/// in plaintext, which no reader of an encrypted prefix may be served, so here it is sealed for the owner key like
/// any put. The caller waits until every older waiter's key is deleted; if the wait ends any other way (deadline,
/// cancellation, a lost watch) the owner key is deleted again, as etcd's mutex does. A waiting Lock holds one
/// upstream watch, for as long as the client's own stream stays open, so it is bounded as that stream is.
/// </summary>
internal sealed class LockHandler : UnaryHandler<LockRequest, LockResponse>
{
    /// <summary>How long removing the owner key of an abandoned Lock may take; past it the key lasts until its lease ends.</summary>
    private static readonly TimeSpan RemovalTimeout = TimeSpan.FromSeconds(5);

    private readonly IValueProtector _protector;
    private readonly ValueRequestLimit _limit;

    public LockHandler(IValueProtector protector, ValueRequestLimit limit)
    {
        _protector = protector;
        _limit = limit;
    }

    protected override async Task<LockResponse> HandleAsync(LockRequest request, RelayCall call)
    {
        _limit.CheckPlaintext(request);
        SessionKey.RequireGrantedLease(request.Lease, "lock");
        var prefix = MutexRequests.Prefix(request.Name);
        var ownerKey = SessionKey.For(request.Name, request.Lease);
        // The owner key is written only when it does not exist (MutexRequests.Acquire), so it is always created by this write.
        var sealedValue = await _protector.ProtectAsync(ownerKey, ByteString.Empty, KeyPlace.Creating, call.CancellationToken).ConfigureAwait(false);

        var acquired = await call.Kv.TxnAsync(MutexRequests.Acquire(prefix, ownerKey, sealedValue, request.Lease), call.Options).ConfigureAwait(false);
        var ownRevision = OwnCreateRevision(acquired);
        var holder = acquired.Responses[1].ResponseRange.Kvs;
        if (holder.Count == 0 || holder[0].CreateRevision == ownRevision)
        {
            return new LockResponse { Header = acquired.Header, Key = ownerKey };
        }

        RangeResponse own;
        try
        {
            await WaitForOlderWaitersAsync(prefix, ownRevision, call).ConfigureAwait(false);
            own = await call.Kv.RangeAsync(new RangeRequest { Key = ownerKey, KeysOnly = true }, call.Options).ConfigureAwait(false);
        }
        catch (Exception)
        {
            await RemoveAsync(ownerKey, call).ConfigureAwait(false);
            if (DeadlinePassed(call))
            {
                throw new RpcException(new Status(StatusCode.DeadlineExceeded, "context deadline exceeded"));
            }

            throw;
        }

        if (own.Kvs.Count == 0)
        {
            // The lease ended while the caller waited: etcd's mutex reports the session as expired, with nothing to remove.
            throw new RpcException(new Status(StatusCode.Unknown, "mutex: session is expired"));
        }

        return new LockResponse { Header = own.Header, Key = ownerKey };
    }

    /// <summary>The create revision of the caller's key: just written, or written by an earlier Lock on the same lease.</summary>
    private static long OwnCreateRevision(TxnResponse acquired)
    {
        if (acquired.Succeeded)
        {
            return acquired.Header.Revision;
        }

        return acquired.Responses[0].ResponseRange.Kvs is [var existing, ..]
            ? existing.CreateRevision
            : throw new RpcException(new Status(StatusCode.Unavailable, "etcdshield: etcd answered the lock's transaction without the owner key; retry"));
    }

    /// <summary>etcd's waitDeletes: wait for the youngest older waiter to go, until none is left.</summary>
    private static async Task WaitForOlderWaitersAsync(ByteString prefix, long ownRevision, RelayCall call)
    {
        while (true)
        {
            var older = await call.Kv.RangeAsync(MutexRequests.YoungestBefore(prefix, ownRevision - 1), call.Options).ConfigureAwait(false);
            if (older.Kvs.Count == 0)
            {
                return;
            }

            await WaitForDeletionAsync(older.Kvs[0].Key, older.Header.Revision, call).ConfigureAwait(false);
        }
    }

    private static async Task WaitForDeletionAsync(ByteString key, long revision, RelayCall call)
    {
        using var watch = call.Watcher.Watch(call.Options);
        await watch.RequestStream.WriteAsync(MutexRequests.WatchFrom(key, revision), call.CancellationToken).ConfigureAwait(false);
        while (await watch.ResponseStream.MoveNext(call.CancellationToken).ConfigureAwait(false))
        {
            var response = watch.ResponseStream.Current;
            if (response.CompactRevision != 0)
            {
                throw new RpcException(new Status(StatusCode.OutOfRange, "etcdserver: mvcc: required revision has been compacted"));
            }

            if (response.Canceled)
            {
                throw new RpcException(new Status(StatusCode.Unknown, response.CancelReason is { Length: > 0 } reason ? reason : "lost watcher waiting for delete"));
            }

            if (response.Events.Any(e => e.Type == Event.Types.EventType.Delete))
            {
                return;
            }
        }

        call.CancellationToken.ThrowIfCancellationRequested();
        throw new RpcException(new Status(StatusCode.Unknown, "lost watcher waiting for delete"));
    }

    /// <summary>
    /// Deletes the owner key of a Lock that will not be granted, on its own short deadline because the call's own has
    /// passed or been cancelled. A failure leaves the key until its lease ends, as it does in etcd.
    /// </summary>
    private static async Task RemoveAsync(ByteString ownerKey, RelayCall call)
    {
        var options = new CallOptions(headers: call.Options.Headers, deadline: DateTime.UtcNow + RemovalTimeout);
        try
        {
            await call.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = ownerKey }, options).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or ObjectDisposedException or InvalidOperationException)
        {
            // The client hears why its Lock failed, not why the clean-up did (etcd unreachable, the proxy stopping).
        }
    }

    private static bool DeadlinePassed(RelayCall call) =>
        call.Context.Deadline != DateTime.MaxValue && call.Context.Deadline <= DateTime.UtcNow;
}
