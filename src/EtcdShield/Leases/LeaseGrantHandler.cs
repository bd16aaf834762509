using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Grpc.Core;

namespace EtcdShield.Leases;

/// <summary>
/// Grants every lease under an ID carrying the caller's <see cref="LeaseTag"/> when the client leaves the choice
/// to the server (ID 0), so that the lease is the caller's on every sidecar. An ID the client chose itself has
/// been checked by the gate and goes to etcd as it is, with etcd's own answer.
/// </summary>
internal sealed class LeaseGrantHandler(CallerLookup callers) : UnaryHandler<LeaseGrantRequest, LeaseGrantResponse>
{
    /// <summary>Forty random bits make a taken ID a near impossibility; the bound is for a store full of them.</summary>
    public const int Attempts = 4;

    /// <summary>etcd's rpctypes.ErrGRPCLeaseExist.</summary>
    private const string LeaseExists = "etcdserver: lease already exists";

    protected override async Task<LeaseGrantResponse> HandleAsync(LeaseGrantRequest request, RelayCall call)
    {
        if (request.ID != 0)
        {
            return await ForwardAsync(request, call).ConfigureAwait(false);
        }

        // Admitted by the gate a moment ago; a policy reloaded since then may have removed the identity.
        var identity = callers.Of(call.Context).Identity
            ?? throw new RpcException(new Status(StatusCode.PermissionDenied, "etcdshield: permission denied: the caller's identity left the policy"));
        return await GrantUnderTagAsync(request, identity.LeaseTag, chosen => ForwardAsync(chosen, call)).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends <paramref name="request"/> with a fresh ID carrying <paramref name="tag"/>, drawing another while etcd
    /// says it is taken, up to <see cref="Attempts"/> times; then etcd's own error stands.
    /// </summary>
    internal static async Task<LeaseGrantResponse> GrantUnderTagAsync(LeaseGrantRequest request, int tag, Func<LeaseGrantRequest, Task<LeaseGrantResponse>> forward)
    {
        for (var attempt = 1; ; attempt++)
        {
            var chosen = request.Clone();
            chosen.ID = LeaseTag.NewId(tag);
            try
            {
                return await forward(chosen).ConfigureAwait(false);
            }
            catch (RpcException e) when (attempt < Attempts && e.StatusCode == StatusCode.FailedPrecondition && e.Status.Detail == LeaseExists)
            {
                // Someone holds this ID already (a collision, or a lease made straight in etcd): draw again.
            }
        }
    }
}
