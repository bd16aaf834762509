using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using static EtcdShield.Protocol.Etcdserverpb.RangeRequest.Types;

namespace EtcdShield.Concurrency;

/// <summary>
/// The requests of etcd's concurrency mutex (what etcd's own Lock server runs), for a lock named <c>name</c>:
/// waiters are the keys under <c>name/</c>, the oldest by create revision holds the lock. Only keys and revisions
/// are read, so every range asks for keys only.
/// </summary>
internal static class MutexRequests
{
    /// <summary>
    /// Joins the waiters unless this session already did (its key exists), and reads the current holder, in one
    /// round trip: success puts the sealed empty value, failure reads the existing key; both then read the holder.
    /// </summary>
    public static TxnRequest Acquire(ByteString prefix, ByteString ownerKey, ByteString sealedValue, long lease)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare
        {
            Key = ownerKey,
            Target = Compare.Types.CompareTarget.Create,
            Result = Compare.Types.CompareResult.Equal,
            CreateRevision = 0,
        });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = ownerKey, Value = sealedValue, Lease = lease } });
        txn.Success.Add(new RequestOp { RequestRange = Holder(prefix) });
        txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = ownerKey, KeysOnly = true } });
        txn.Failure.Add(new RequestOp { RequestRange = Holder(prefix) });
        return txn;
    }

    /// <summary>The waiter with the oldest create revision: the holder.</summary>
    public static RangeRequest Holder(ByteString prefix) => new()
    {
        Key = prefix,
        RangeEnd = PrefixEnd(prefix),
        SortTarget = SortTarget.Create,
        SortOrder = SortOrder.Ascend,
        Limit = 1,
        KeysOnly = true,
    };

    /// <summary>The youngest waiter created at or before <paramref name="maxCreateRevision"/>: the next one to wait for.</summary>
    public static RangeRequest YoungestBefore(ByteString prefix, long maxCreateRevision) => new()
    {
        Key = prefix,
        RangeEnd = PrefixEnd(prefix),
        SortTarget = SortTarget.Create,
        SortOrder = SortOrder.Descend,
        Limit = 1,
        MaxCreateRevision = maxCreateRevision,
        KeysOnly = true,
    };

    /// <summary>Watches <paramref name="key"/> from <paramref name="revision"/>, at which it existed, so its deletion cannot be missed.</summary>
    public static WatchRequest WatchFrom(ByteString key, long revision) =>
        new() { CreateRequest = new WatchCreateRequest { Key = key, StartRevision = revision } };

    /// <summary>The waiters' prefix: <c>name/</c>.</summary>
    public static ByteString Prefix(ByteString name) => ByteString.CopyFrom([.. name.Span, (byte)'/']);

    private static ByteString PrefixEnd(ByteString prefix) =>
        KeyRange.PrefixEnd(prefix.Span) is { } end ? UnsafeByteOperations.UnsafeWrap(end) : ByteString.CopyFrom(0);
}
