using EtcdShield.Protocol.Etcdserverpb;
using Google.Protobuf;

namespace EtcdShield.ReadCache;

/// <summary>A key, or a range of keys as etcd writes them (range end "\0": every key from the key on), that a write changes.</summary>
internal readonly record struct WrittenRange(ByteString Key, ByteString RangeEnd)
{
    public bool IsSingleKey => RangeEnd.IsEmpty;

    public bool FromKey => IsFromKey(RangeEnd);

    public static bool IsFromKey(ByteString rangeEnd) => rangeEnd.Length == 1 && rangeEnd[0] == 0;

    public bool Holds(ByteString key) =>
        IsSingleKey
            ? key.Span.SequenceEqual(Key.Span)
            : key.Span.SequenceCompareTo(Key.Span) >= 0 && (FromKey || key.Span.SequenceCompareTo(RangeEnd.Span) < 0);

    /// <summary>
    /// What a Put, DeleteRange or Txn may change: every put and delete of both branches of a txn and of the txns
    /// nested in them (which branch etcd took does not matter: invalidating too much is safe). Linear in the request.
    /// </summary>
    public static IReadOnlyList<WrittenRange> Of(object request)
    {
        var ranges = new List<WrittenRange>();
        Add(ranges, request);
        return ranges;
    }

    private static void Add(List<WrittenRange> ranges, object request)
    {
        switch (request)
        {
            case PutRequest put:
                ranges.Add(new WrittenRange(put.Key, ByteString.Empty));
                break;
            case DeleteRangeRequest delete:
                ranges.Add(new WrittenRange(delete.Key, delete.RangeEnd));
                break;
            case TxnRequest txn:
                AddOps(ranges, txn.Success);
                AddOps(ranges, txn.Failure);
                break;
        }
    }

    private static void AddOps(List<WrittenRange> ranges, IEnumerable<RequestOp> ops)
    {
        foreach (var op in ops)
        {
            switch (op.RequestCase)
            {
                case RequestOp.RequestOneofCase.RequestPut:
                    Add(ranges, op.RequestPut);
                    break;
                case RequestOp.RequestOneofCase.RequestDeleteRange:
                    Add(ranges, op.RequestDeleteRange);
                    break;
                case RequestOp.RequestOneofCase.RequestTxn:
                    Add(ranges, op.RequestTxn);
                    break;
            }
        }
    }
}
