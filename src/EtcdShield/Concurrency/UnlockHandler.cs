using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3lockpb;
using EtcdShield.Relay;

namespace EtcdShield.Concurrency;

/// <summary>Unlock, served with <see cref="LockHandler"/>: as in etcd's lock server, it deletes the owner key.</summary>
internal sealed class UnlockHandler : UnaryHandler<UnlockRequest, UnlockResponse>
{
    protected override async Task<UnlockResponse> HandleAsync(UnlockRequest request, RelayCall call)
    {
        var deleted = await call.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = request.Key }, call.Options).ConfigureAwait(false);
        return new UnlockResponse { Header = deleted.Header };
    }
}
