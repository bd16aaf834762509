using System.Text.Json.Serialization;
using EtcdShield.Reload;
using EtcdShield.Tls;

namespace EtcdShield.Hosting;

/// <summary>
/// <c>/health</c> in etcd's own shape: 200 with <c>{"health":"true"}</c> when an etcd member answers a status
/// request through the proxy's upstream channel, 503 with the reason when none does. While it serves, anything
/// an operator must act on soon (a certificate close to expiry, a changed file that failed to load) makes the
/// status "degraded", still 200, with the details under "warnings"; so does an audit log that cannot be written.
/// etcd's answer is the one <c>/readyz</c> made (<see cref="Readiness"/>: cached, one round in flight), so a storm
/// of requests on the unauthenticated metrics port asks etcd no more often than the probes do.
/// </summary>
internal sealed partial class HealthEndpoint
{
    private readonly Readiness _readiness;
    private readonly IReadOnlyList<IReloadable> _reloadables;
    private readonly CertificateExpiry _expiry;
    private readonly Audit.AuditLog _audit;

    public HealthEndpoint(Readiness readiness, IEnumerable<IReloadable> reloadables, CertificateExpiry expiry, Audit.AuditLog audit)
    {
        _audit = audit;
        _readiness = readiness;
        _reloadables = reloadables.ToList();
        _expiry = expiry;
    }

    public async Task WriteAsync(HttpContext context)
    {
        var report = await _readiness.CheckAsync().WaitAsync(context.RequestAborted).ConfigureAwait(false);
        var reason = report.Results.Single(r => r.Name == EtcdReachability.CheckName).Reason;

        var warnings = _expiry.Expiring().ToList();
        warnings.AddRange(_reloadables
            .Where(r => r.LastError is not null)
            .Select(r => $"{r.Name} not reloaded, the last good version is in use: {r.LastError}"));
        if (_audit.WriteError is { } auditError)
        {
            warnings.Add($"audit log not written, records are dropped: {auditError}");
        }

        var status = reason is not null ? "unhealthy" : warnings.Count > 0 ? "degraded" : "ok";
        context.Response.StatusCode = reason is null ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        await context.Response.WriteAsJsonAsync(new HealthReport(reason is null ? "true" : "false", reason ?? "", status, warnings), HealthJson.Default.HealthReport).ConfigureAwait(false);
    }

    // The names are etcd's /health JSON fields, spelled out so no serializer option can change them.
    private sealed record HealthReport(
        [property: JsonPropertyName("health")] string Health,
        [property: JsonPropertyName("reason")] string Reason,
        [property: JsonPropertyName("status")] string Status,
        [property: JsonPropertyName("warnings")] IReadOnlyList<string> Warnings);

    // Source-generated: the published program is trimmed, and reflection-based serialization is off there.
    [JsonSerializable(typeof(HealthReport))]
    private sealed partial class HealthJson : JsonSerializerContext;
}
