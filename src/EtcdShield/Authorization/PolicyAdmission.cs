using EtcdShield.Reload;
using EtcdShield.Tls;

namespace EtcdShield.Authorization;

/// <summary>Admits at the handshake only clients that match an identity of the current policy.</summary>
internal sealed class PolicyAdmission : IClientAdmission
{
    private readonly ReloadableFiles<AccessPolicy> _policy;

    public PolicyAdmission(ReloadableFiles<AccessPolicy> policy) => _policy = policy;

    public bool Admits(ClientIdentity identity) => _policy.Current.Resolve(identity) is not null;
}
