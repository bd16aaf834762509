using System.Diagnostics.Metrics;

namespace EtcdShield.Authorization;

/// <summary>The authorization counters, the "EtcdShield.Authorization" meter.</summary>
internal sealed class AuthorizationMetrics
{
    public const string MeterName = "EtcdShield.Authorization";

    private readonly Counter<long> _denied;

    public AuthorizationMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _denied = meterFactory.Create(MeterName).CreateCounter<long>(
            "etcdshield.requests.denied", unit: "{request}", description: "Requests (and watches) the policy refused, by method and identity.");
    }

    /// <param name="identity">The policy identity's name, or "(none)" when the caller matches none.</param>
    public void Denied(string method, string identity) =>
        _denied.Add(1, new KeyValuePair<string, object?>("method", method), new KeyValuePair<string, object?>("identity", identity));
}
