using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Protocol.V3lockpb;
using Google.Protobuf;

namespace EtcdShield.Authorization;

/// <summary>
/// The key ranges a request reads and writes, in etcd's own terms: a put writes its key, a range reads its
/// range, a compare reads what it compares, and asking for prev_kv also reads what is overwritten or deleted.
/// Txns are walked to the bottom, so one forbidden op anywhere in a nested txn is found.
/// </summary>
internal static class RequiredAccess
{
    /// <summary>Appends what <paramref name="request"/> of <paramref name="method"/> touches to <paramref name="into"/>.</summary>
    public static void Collect(string method, IMessage request, List<KeyAccess> into)
    {
        switch (request)
        {
            case RangeRequest range:
                AddRange(range, into);
                break;
            case PutRequest put:
                AddPut(put, into);
                break;
            case DeleteRangeRequest delete:
                AddDelete(delete, into);
                break;
            case TxnRequest txn:
                AddTxn(txn, into);
                break;
            case WatchRequest { CreateRequest: { } create }:
                into.Add(new KeyAccess(KeyRange.FromEtcd(create.Key, create.RangeEnd), KeyPermission.Read, "watch"));
                break;
            // The lock and election services keep their state under name + "/": a lock or campaign creates a key
            // there and reads and watches the others, so it needs both permissions on that prefix.
            case LockRequest lockRequest:
                into.Add(new KeyAccess(UnderName(lockRequest.Name), KeyPermission.ReadWrite, "lock"));
                break;
            case UnlockRequest unlock:
                into.Add(new KeyAccess(KeyRange.SingleKey(unlock.Key.Span), KeyPermission.ReadWrite, "unlock"));
                break;
            case CampaignRequest campaign:
                into.Add(new KeyAccess(UnderName(campaign.Name), KeyPermission.ReadWrite, "campaign"));
                break;
            case ProclaimRequest proclaim:
                into.Add(new KeyAccess(LeaderKey(proclaim.Leader), KeyPermission.ReadWrite, "proclaim"));
                break;
            case ResignRequest resign:
                into.Add(new KeyAccess(LeaderKey(resign.Leader), KeyPermission.ReadWrite, "resign"));
                break;
            case LeaderRequest leader:
                into.Add(new KeyAccess(UnderName(leader.Name), KeyPermission.Read, "leader"));
                break;
            default:
                // Observe shares LeaderRequest; every other method names no keys (lease keys are checked by the gate).
                _ = method;
                break;
        }
    }

    private static void AddRange(RangeRequest range, List<KeyAccess> into) =>
        into.Add(new KeyAccess(KeyRange.FromEtcd(range.Key, range.RangeEnd), KeyPermission.Read, "range"));

    private static void AddPut(PutRequest put, List<KeyAccess> into) =>
        into.Add(new KeyAccess(KeyRange.SingleKey(put.Key.Span), put.PrevKv ? KeyPermission.ReadWrite : KeyPermission.Write, "put"));

    private static void AddDelete(DeleteRangeRequest delete, List<KeyAccess> into) =>
        into.Add(new KeyAccess(KeyRange.FromEtcd(delete.Key, delete.RangeEnd), delete.PrevKv ? KeyPermission.ReadWrite : KeyPermission.Write, "delete"));

    private static void AddTxn(TxnRequest txn, List<KeyAccess> into)
    {
        foreach (var compare in txn.Compare)
        {
            into.Add(new KeyAccess(KeyRange.FromEtcd(compare.Key, compare.RangeEnd), KeyPermission.Read, "compare"));
        }

        AddOps(txn.Success, into);
        AddOps(txn.Failure, into);
    }

    private static void AddOps(IEnumerable<RequestOp> ops, List<KeyAccess> into)
    {
        foreach (var op in ops)
        {
            switch (op.RequestCase)
            {
                case RequestOp.RequestOneofCase.RequestRange:
                    AddRange(op.RequestRange, into);
                    break;
                case RequestOp.RequestOneofCase.RequestPut:
                    AddPut(op.RequestPut, into);
                    break;
                case RequestOp.RequestOneofCase.RequestDeleteRange:
                    AddDelete(op.RequestDeleteRange, into);
                    break;
                case RequestOp.RequestOneofCase.RequestTxn:
                    AddTxn(op.RequestTxn, into);
                    break;
                default:
                    // An empty op does nothing in etcd; nothing to check.
                    break;
            }
        }
    }

    private static KeyRange UnderName(ByteString name)
    {
        var bytes = new byte[name.Length + 1];
        name.Span.CopyTo(bytes);
        bytes[^1] = (byte)'/';
        return KeyRange.Prefix(bytes);
    }

    private static KeyRange LeaderKey(LeaderKey? leader) => KeyRange.SingleKey(leader is null ? [] : leader.Key.Span);
}
