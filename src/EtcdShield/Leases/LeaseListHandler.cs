using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;

namespace EtcdShield.Leases;

/// <summary>
/// LeaseLeases lists every lease in etcd; each caller sees only those it owns (all of them when it manages every
/// lease), as if the others did not exist.
/// </summary>
internal sealed class LeaseListHandler(CallerLookup callers) : UnaryHandler<LeaseLeasesRequest, LeaseLeasesResponse>
{
    protected override async Task<LeaseLeasesResponse> HandleAsync(LeaseLeasesRequest request, RelayCall call)
    {
        var response = await ForwardAsync(request, call).ConfigureAwait(false);
        var identity = callers.Of(call.Context).Identity;
        if (identity is { ManagesEveryLease: true })
        {
            return response;
        }

        var owned = response.Leases.Where(l => identity is not null && LeaseTag.Carries(l.ID, identity.LeaseTag)).ToList();
        response.Leases.Clear();
        response.Leases.Add(owned);
        return response;
    }
}
