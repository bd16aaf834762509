using EtcdShield.Keys;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Grpc.Core;

namespace EtcdShield.Hosting;

/// <summary>etcd answers a Status request through the proxy's own upstream channel (/readyz, and /health from its round).</summary>
internal sealed class EtcdReachability : IReadinessCheck
{
    private readonly Maintenance.MaintenanceClient _maintenance;

    public EtcdReachability(UpstreamChannel upstream)
    {
        _maintenance = new Maintenance.MaintenanceClient(upstream.Invoker);
    }

    public const string CheckName = "etcd";

    public string Name => CheckName;

    public async Task<string?> CheckAsync(TimeSpan deadline, CancellationToken cancellationToken)
    {
        try
        {
            await _maintenance.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + deadline, cancellationToken: cancellationToken)
                .ConfigureAwait(false);
            return null;
        }
        catch (RpcException e)
        {
            return $"etcd unreachable: {e.Status.StatusCode}: {e.Status.Detail}";
        }
    }
}

/// <summary>
/// The HSM (a session, and the KEK found in it) or the KMS plugin (Status, healthz and key id) answers: asked
/// through <see cref="KeyRingRefresher.CheckNowAsync"/>, the same check that follows KEK rotation, so a probe also
/// moves the proxy to a rotated KEK a little sooner and costs no extra kind of call to the provider.
/// </summary>
internal sealed class KeyProviderReachability : IReadinessCheck
{
    private readonly KeyRingRefresher _refresher;

    public KeyProviderReachability(KeyRingRefresher refresher)
    {
        _refresher = refresher;
    }

    public string Name => "key_provider";

    public async Task<string?> CheckAsync(TimeSpan deadline, CancellationToken cancellationToken)
    {
        await _refresher.CheckNowAsync(cancellationToken).ConfigureAwait(false);
        return _refresher.LastFailure is { } failure ? $"key provider unreachable: {failure}" : null;
    }
}
