using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace EtcdShield.Encryption;

/// <summary>
/// etcd's own checks of a Txn (v3rpc's checkTxnRequest and checkIntervals, as in etcd 3.4), with etcd's exact
/// codes and messages, so that a transaction etcd would refuse is refused before the proxy reads, decrypts or
/// guards anything for it. Each check costs time linear in the request (n log n for the key intervals).
/// </summary>
internal static class TxnRequestCheck
{
    public static readonly Status TooManyOps = new(StatusCode.InvalidArgument, "etcdserver: too many operations in txn request");
    public static readonly Status DuplicateKey = new(StatusCode.InvalidArgument, "etcdserver: duplicate key given in txn request");
    private static readonly Status EmptyKey = new(StatusCode.InvalidArgument, "etcdserver: key is not provided");
    private static readonly Status EmptyOp = new(StatusCode.InvalidArgument, "etcdserver: key not found");
    private static readonly Status ValueProvided = new(StatusCode.InvalidArgument, "etcdserver: value is provided");
    private static readonly Status LeaseProvided = new(StatusCode.InvalidArgument, "etcdserver: lease is provided");

    /// <summary>Throws etcd's answer when etcd would refuse <paramref name="txn"/> before running it.</summary>
    public static void Check(TxnRequest txn, int maxTxnOps)
    {
        if (Shape(txn, maxTxnOps) is { } refusal)
        {
            throw new RpcException(refusal);
        }

        Overlaps(txn.Success);
        Overlaps(txn.Failure);
    }

    /// <summary>
    /// Whether every level of <paramref name="txn"/> stays within etcd's op budget: a level's ops are the most of
    /// its compares, success ops and failure ops, and a nested txn gets what its parent left (etcd 3.4 passes
    /// <c>maxTxnOps - opc</c> down).
    /// </summary>
    public static bool FitsOpBudget(TxnRequest txn, int maxTxnOps)
    {
        var ops = LevelOps(txn);
        if (ops > maxTxnOps)
        {
            return false;
        }

        foreach (var op in txn.Success.Concat(txn.Failure))
        {
            if (op.RequestTxn is { } nested && !FitsOpBudget(nested, maxTxnOps - ops))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>etcd serves a txn whose ops are all ranges without raft, so it never checks its size (isTxnReadonly).</summary>
    public static bool IsReadOnly(TxnRequest txn) =>
        txn.Success.All(op => op.RequestCase == RequestOp.RequestOneofCase.RequestRange) &&
        txn.Failure.All(op => op.RequestCase == RequestOp.RequestOneofCase.RequestRange);

    private static int LevelOps(TxnRequest txn) => Math.Max(txn.Compare.Count, Math.Max(txn.Success.Count, txn.Failure.Count));

    /// <summary>checkTxnRequest: op counts first, then empty keys, then each op in order.</summary>
    private static Status? Shape(TxnRequest txn, int maxTxnOps)
    {
        var ops = LevelOps(txn);
        if (ops > maxTxnOps)
        {
            return TooManyOps;
        }

        foreach (var compare in txn.Compare)
        {
            if (compare.Key.IsEmpty)
            {
                return EmptyKey;
            }
        }

        foreach (var op in txn.Success.Concat(txn.Failure))
        {
            if (Shape(op, maxTxnOps - ops) is { } refusal)
            {
                return refusal;
            }
        }

        return null;
    }

    private static Status? Shape(RequestOp op, int maxTxnOps) => op.RequestCase switch
    {
        RequestOp.RequestOneofCase.RequestRange => op.RequestRange.Key.IsEmpty ? EmptyKey : null,
        RequestOp.RequestOneofCase.RequestDeleteRange => op.RequestDeleteRange.Key.IsEmpty ? EmptyKey : null,
        RequestOp.RequestOneofCase.RequestPut => op.RequestPut switch
        {
            { Key.IsEmpty: true } => EmptyKey,
            { IgnoreValue: true, Value.IsEmpty: false } => ValueProvided,
            { IgnoreLease: true } put when put.Lease != 0 => LeaseProvided,
            _ => null,
        },
        RequestOp.RequestOneofCase.RequestTxn => Shape(op.RequestTxn, maxTxnOps),
        _ => EmptyOp,
    };

    /// <summary>
    /// checkIntervals: no key may be put twice, or put and deleted, in ops that can run together. The two
    /// branches of a nested txn never run together, so they may put the same key; a put is checked against the
    /// deletes of its own level and of the nested txns before it, as etcd checks them.
    /// </summary>
    private static (HashSet<ByteString> Puts, KeyIntervals Deletes) Overlaps(IEnumerable<RequestOp> ops)
    {
        var level = ops as IList<RequestOp> ?? ops.ToList();
        var deletes = new KeyIntervals();
        foreach (var op in level)
        {
            if (op.RequestDeleteRange is { } delete)
            {
                deletes.Add(delete.Key, delete.RangeEnd);
            }
        }

        var puts = new HashSet<ByteString>();
        foreach (var op in level)
        {
            if (op.RequestTxn is not { } nested)
            {
                continue;
            }

            var (putsThen, deletesThen) = Overlaps(nested.Success);
            var (putsElse, deletesElse) = Overlaps(nested.Failure);
            foreach (var key in putsThen)
            {
                Refuse(puts.Contains(key) || deletes.Contains(key));
            }

            puts.UnionWith(putsThen);
            foreach (var key in putsElse)
            {
                Refuse((puts.Contains(key) && !putsThen.Contains(key)) || deletes.Contains(key));
            }

            puts.UnionWith(putsElse);
            deletes.AddAll(deletesThen);
            deletes.AddAll(deletesElse);
        }

        foreach (var op in level)
        {
            if (op.RequestPut is { } put)
            {
                Refuse(!puts.Add(put.Key) || deletes.Contains(put.Key));
            }
        }

        return (puts, deletes);
    }

    private static void Refuse(bool duplicate)
    {
        if (duplicate)
        {
            throw new RpcException(DuplicateKey);
        }
    }

    /// <summary>
    /// The keys a set of deletes covers, as disjoint sorted intervals [start, end): adding is O(log n) amortized,
    /// and asking whether a key is covered is O(log n). A delete of one key covers [key, key + "\0"); one whose
    /// range_end is at or before its key covers nothing, as in etcd's interval tree (range_end "\0" included).
    /// </summary>
    private sealed class KeyIntervals
    {
        private static readonly ByteString Lowest = ByteString.Empty;
        private readonly SortedSet<(ByteString Start, ByteString End)> _intervals = new(ByStart.Instance);

        public void Add(ByteString key, ByteString rangeEnd)
        {
            var end = rangeEnd.IsEmpty ? Successor(key) : rangeEnd;
            if (Order(key, end) < 0)
            {
                Insert(key, end);
            }
        }

        public void AddAll(KeyIntervals other)
        {
            foreach (var (start, end) in other._intervals)
            {
                Insert(start, end);
            }
        }

        public bool Contains(ByteString key) => Floor(key) is { } interval && Order(key, interval.End) < 0;

        private void Insert(ByteString start, ByteString end)
        {
            // Join the interval that starts at or before this one if they touch, then every one starting inside it.
            if (Floor(start) is { } before && Order(before.End, start) >= 0)
            {
                start = before.Start;
                end = Max(end, before.End);
                _intervals.Remove(before);
            }

            var inside = _intervals.GetViewBetween((start, Lowest), (end, Lowest)).ToList();
            foreach (var interval in inside)
            {
                end = Max(end, interval.End);
                _intervals.Remove(interval);
            }

            _intervals.Add((start, end));
        }

        private (ByteString Start, ByteString End)? Floor(ByteString key)
        {
            if (_intervals.Count == 0 || Order(_intervals.Min.Start, key) > 0)
            {
                return null;
            }

            return _intervals.GetViewBetween(_intervals.Min, (key, Lowest)).Max;
        }

        private static ByteString Successor(ByteString key)
        {
            var bytes = new byte[key.Length + 1];
            key.Span.CopyTo(bytes);
            return ByteString.CopyFrom(bytes);
        }

        private static ByteString Max(ByteString a, ByteString b) => Order(a, b) >= 0 ? a : b;

        private static int Order(ByteString a, ByteString b) => a.Span.SequenceCompareTo(b.Span);

        private sealed class ByStart : IComparer<(ByteString Start, ByteString End)>
        {
            public static readonly ByStart Instance = new();

            public int Compare((ByteString Start, ByteString End) x, (ByteString Start, ByteString End) y) => Order(x.Start, y.Start);
        }
    }
}
