using System.Runtime.CompilerServices;
using EtcdShield.Reload;
using EtcdShield.Tls;
using Grpc.Core;
using Microsoft.AspNetCore.Connections.Features;

namespace EtcdShield.Authorization;

/// <summary>
/// Who is calling, under the policy and client trust in force right now: looked up per request (and per message on
/// a stream), so a reload applies to the next one, also on connections already open.
/// </summary>
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

        // Every connection the TLS layer accepts carries its admitted caller; one that does not is not admitted.
        return new Caller(ClientIdentity.Unknown, null, policy, http.Connection.RemoteIpAddress + ":" + http.Connection.RemotePort);
    }
}
