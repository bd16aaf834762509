using System.Diagnostics.Metrics;

namespace EtcdShield.Authorization;

/// <summary>The authorization feature's meter: requests and watches the policy refused.</summary>
internal sealed class AuthorizationMetrics
{
    public const string MeterName = "EtcdShield.Authorization";

    private readonly Counter<long> _denied;

    public AuthorizationMetrics(IMeterFactory meters) =>
        _denied = meters.Create(MeterName).CreateCounter<long>(
            "etcdshield.requests.denied", unit: "{request}", description: "Requests (and watches) the policy refused, by method and identity.");

    public void Denied(string method, string identity) =>
        _denied.Add(1, new KeyValuePair<string, object?>("method", method), new KeyValuePair<string, object?>("identity", identity));
}
