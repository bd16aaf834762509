using System.Runtime.CompilerServices;
using EtcdShield.Reload;
using EtcdShield.Tls;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace EtcdShield.Authorization;

/// <summary>Who is calling: the client the TLS handshake admitted on the request's connection, under the current policy and trust.</summary>
internal sealed class CallerLookup
{
    private readonly ReloadableFiles<AccessPolicy> _policy;
    private readonly ReloadableFiles<ClientTrust> _trust;

    // One cache per open connection, dropped with the connection's AdmittedClient. The table is thread-safe: the
    // HTTP/2 streams of one connection ask for their caller concurrently.
    private readonly ConditionalWeakTable<AdmittedClient, ConnectionCaller> _connections = new();

    public CallerLookup(ReloadableFiles<AccessPolicy> policy, ReloadableFiles<ClientTrust> trust)
    {
        _policy = policy;
        _trust = trust;
    }

    public Caller Of(ServerCallContext context) => Of(context.GetHttpContext());

    public Caller Of(HttpContext http)
    {
        var policy = _policy.Current;
        if (http.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(AdmittedClient.ItemKey, out var item) == true && item is AdmittedClient client)
        {
            return _connections.GetValue(client, static c => new ConnectionCaller(c)).Under(policy, _trust.Current);
        }

        // Only reached if the TLS layer did not leave the client on the connection; the certificate still decides.
        var certificate = http.Connection.ClientCertificate;
        var identity = certificate is null ? ClientIdentity.Unknown : ClientIdentity.FromCertificate(certificate);
        return new Caller(identity, policy.Resolve(identity), policy, http.Connection.RemoteIpAddress + ":" + http.Connection.RemotePort);
    }
}
