using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace EtcdShield.Telemetry;

/// <summary>
/// <c>/health</c> in etcd's own shape: 200 with <c>{"health":"true"}</c> when an etcd member answers a
/// status request through the proxy's upstream channel, 503 with the reason when none does.
/// </summary>
internal sealed class HealthEndpoint
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(3);
    private readonly Maintenance.MaintenanceClient _maintenance;

    public HealthEndpoint(UpstreamChannel upstream) => _maintenance = new Maintenance.MaintenanceClient(upstream.Invoker);

    public async Task WriteAsync(HttpContext context)
    {
        string? reason = null;
        try
        {
            await _maintenance.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + Deadline, cancellationToken: context.RequestAborted)
                .ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            reason = $"etcd unreachable: {e.Status.StatusCode}: {e.Status.Detail}";
        }

        context.Response.StatusCode = reason is null ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        await context.Response.WriteAsJsonAsync(new HealthReport(reason is null ? "true" : "false", reason ?? "")).ConfigureAwait(false);
    }

    private sealed record HealthReport(string health, string reason);
}
