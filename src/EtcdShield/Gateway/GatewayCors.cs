using EtcdShield.Configuration;
using Microsoft.AspNetCore.Cors.Infrastructure;

namespace EtcdShield.Gateway;

/// <summary>
/// Browsers on the origins of <c>--cors-allowed-origins</c> may call the client URLs (the JSON gateway and etcd's
/// plain endpoints), told what etcd's <c>--cors</c> tells them: the origin allowed, the methods POST, GET, OPTIONS,
/// PUT, DELETE, the headers accept, content-type, authorization; a preflight is answered here, never by etcd.
/// Without the flag the middleware is not there at all: no Access-Control-* header, and no preflight answered.
/// The metrics URL never answers cross-origin.
/// </summary>
internal static class GatewayCors
{
    public static void AddTo(IServiceCollection services, ShieldOptions options)
    {
        if (PolicyFor(options.CorsAllowedOrigins) is { } policy)
        {
            services.AddCors(cors => cors.AddDefaultPolicy(policy));
        }
    }

    public static void Use(WebApplication app)
    {
        var options = app.Services.GetRequiredService<ShieldOptions>();
        if (options.CorsAllowedOrigins.Count > 0)
        {
            var metricsPort = options.MetricsListenUrl?.Port;
            app.UseWhen(context => context.Connection.LocalPort != metricsPort, client => client.UseCors());
        }
    }

    /// <summary>The policy for <paramref name="origins"/>, or null when there are none. "*" answers any origin with "*", as etcd does.</summary>
    public static CorsPolicy? PolicyFor(IReadOnlyList<string> origins)
    {
        if (origins.Count == 0)
        {
            return null;
        }

        var policy = new CorsPolicyBuilder()
            .WithMethods("POST", "GET", "OPTIONS", "PUT", "DELETE")
            .WithHeaders("accept", "content-type", "authorization");
        return (origins.Contains("*") ? policy.AllowAnyOrigin() : policy.WithOrigins([.. origins])).Build();
    }
}
