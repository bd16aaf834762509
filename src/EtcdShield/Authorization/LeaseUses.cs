using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Protocol.V3lockpb;
using Google.Protobuf;

namespace EtcdShield.Authorization;

/// <summary>
/// The leases a request acts on or attaches keys to, each of which the caller must own (its ID carries the
/// caller's <see cref="LeaseTag"/>), unless it manages every lease. Without this, anyone with Lease methods could
/// keep alive or revoke another identity's leases, and anyone who may write one key could attach it to another's
/// lease and so make that lease's owner unable to revoke it.
/// </summary>
internal static class LeaseUses
{
    /// <summary>Why <paramref name="identity"/> may not use a lease <paramref name="request"/> names, or null.</summary>
    public static string? Foreign(PolicyIdentity identity, string method, IMessage request)
    {
        if (identity.ManagesEveryLease)
        {
            return null;
        }

        return request switch
        {
            // Zero asks the proxy to choose, which it does with the caller's tag.
            LeaseGrantRequest { ID: not 0 } grant when !LeaseTag.Carries(grant.ID, identity.LeaseTag) =>
                $"may not grant lease {grant.ID:x} ({method}): a lease ID chosen by the client must carry its identity's tag; pass 0 and the proxy chooses one",
            LeaseRevokeRequest revoke => NotOwned(identity, revoke.ID, method),
            LeaseTimeToLiveRequest ttl => NotOwned(identity, ttl.ID, method),
            LeaseKeepAliveRequest keepAlive => NotOwned(identity, keepAlive.ID, method),
            PutRequest put => Attached(identity, put.Lease, method),
            TxnRequest txn => InTxn(identity, txn, method),
            LockRequest lockRequest => Attached(identity, lockRequest.Lease, method),
            CampaignRequest campaign => Attached(identity, campaign.Lease, method),
            // etcd's election server opens a session on the leader key's lease for these, which renews it.
            ProclaimRequest { Leader: { } leader } => Attached(identity, leader.Lease, method),
            ResignRequest { Leader: { } leader } => Attached(identity, leader.Lease, method),
            _ => null,
        };
    }

    private static string? NotOwned(PolicyIdentity identity, long id, string method) =>
        LeaseTag.Carries(id, identity.LeaseTag) ? null : $"may not use lease {id:x}, which it does not own ({method})";

    /// <summary>A key written with lease 0 is attached to no lease.</summary>
    private static string? Attached(PolicyIdentity identity, long lease, string method) =>
        lease == 0 ? null : NotOwned(identity, lease, method);

    private static string? InTxn(PolicyIdentity identity, TxnRequest txn, string method) =>
        InOps(identity, txn.Success, method) ?? InOps(identity, txn.Failure, method);

    private static string? InOps(PolicyIdentity identity, IEnumerable<RequestOp> ops, string method)
    {
        foreach (var op in ops)
        {
            var reason = op.RequestCase switch
            {
                RequestOp.RequestOneofCase.RequestPut => Attached(identity, op.RequestPut.Lease, method),
                RequestOp.RequestOneofCase.RequestTxn => InTxn(identity, op.RequestTxn, method),
                _ => null,
            };
            if (reason is not null)
            {
                return reason;
            }
        }

        return null;
    }
}
