using System.Collections.Frozen;
using EtcdShield.Relay;

namespace EtcdShield.Gateway;

/// <summary>
/// The paths of etcd's HTTP/JSON gateway (the <c>google.api.http</c> annotations of etcd 3.4 and 3.5's protos) and
/// the etcd method each one calls. <c>/v3beta/</c> is the same API, as etcd 3.4+ rewrites it; <c>/v3alpha/</c> is
/// not served by 3.4+ and is answered as an unknown path.
/// </summary>
internal sealed class GatewayRoutes
{
    /// <summary>The prefixes the gateway answers; anything under them that is not a route is a 404 in its error shape.</summary>
    public static readonly string[] Prefixes = ["/v3", "/v3beta", "/v3alpha"];

    /// <summary>Path (without the version prefix) to the method's short name, as etcd's gateway routes them.</summary>
    internal static readonly IReadOnlyDictionary<string, string> Paths = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["/kv/range"] = "KV/Range",
        ["/kv/put"] = "KV/Put",
        ["/kv/deleterange"] = "KV/DeleteRange",
        ["/kv/txn"] = "KV/Txn",
        ["/kv/compaction"] = "KV/Compact",
        ["/watch"] = "Watch/Watch",
        ["/lease/grant"] = "Lease/LeaseGrant",
        ["/lease/revoke"] = "Lease/LeaseRevoke",
        ["/kv/lease/revoke"] = "Lease/LeaseRevoke",
        ["/lease/keepalive"] = "Lease/LeaseKeepAlive",
        ["/lease/timetolive"] = "Lease/LeaseTimeToLive",
        ["/kv/lease/timetolive"] = "Lease/LeaseTimeToLive",
        ["/lease/leases"] = "Lease/LeaseLeases",
        ["/kv/lease/leases"] = "Lease/LeaseLeases",
        ["/cluster/member/add"] = "Cluster/MemberAdd",
        ["/cluster/member/remove"] = "Cluster/MemberRemove",
        ["/cluster/member/update"] = "Cluster/MemberUpdate",
        ["/cluster/member/list"] = "Cluster/MemberList",
        ["/cluster/member/promote"] = "Cluster/MemberPromote",
        ["/maintenance/alarm"] = "Maintenance/Alarm",
        ["/maintenance/status"] = "Maintenance/Status",
        ["/maintenance/defragment"] = "Maintenance/Defragment",
        ["/maintenance/hash"] = "Maintenance/Hash",
        // etcd 3.4 also maps HashKV to /hash, where Hash answers first; 3.5 serves it here.
        ["/maintenance/hashkv"] = "Maintenance/HashKV",
        ["/maintenance/snapshot"] = "Maintenance/Snapshot",
        ["/maintenance/transfer-leadership"] = "Maintenance/MoveLeader",
        ["/maintenance/downgrade"] = "Maintenance/Downgrade",
        ["/auth/enable"] = "Auth/AuthEnable",
        ["/auth/disable"] = "Auth/AuthDisable",
        ["/auth/status"] = "Auth/AuthStatus",
        ["/auth/authenticate"] = "Auth/Authenticate",
        ["/auth/user/add"] = "Auth/UserAdd",
        ["/auth/user/get"] = "Auth/UserGet",
        ["/auth/user/list"] = "Auth/UserList",
        ["/auth/user/delete"] = "Auth/UserDelete",
        ["/auth/user/changepw"] = "Auth/UserChangePassword",
        ["/auth/user/grant"] = "Auth/UserGrantRole",
        ["/auth/user/revoke"] = "Auth/UserRevokeRole",
        ["/auth/role/add"] = "Auth/RoleAdd",
        ["/auth/role/get"] = "Auth/RoleGet",
        ["/auth/role/list"] = "Auth/RoleList",
        ["/auth/role/delete"] = "Auth/RoleDelete",
        ["/auth/role/grant"] = "Auth/RoleGrantPermission",
        ["/auth/role/revoke"] = "Auth/RoleRevokePermission",
        ["/election/campaign"] = "Election/Campaign",
        ["/election/proclaim"] = "Election/Proclaim",
        ["/election/leader"] = "Election/Leader",
        ["/election/observe"] = "Election/Observe",
        ["/election/resign"] = "Election/Resign",
        ["/lock/lock"] = "Lock/Lock",
        ["/lock/unlock"] = "Lock/Unlock",
    };

    private readonly FrozenDictionary<string, RelayedMethod> _routes;

    /// <param name="methods">The relayed methods; every gateway path must name one of them.</param>
    public GatewayRoutes(IEnumerable<RelayedMethod> methods)
    {
        var byName = methods.ToDictionary(m => m.Name, StringComparer.Ordinal);
        var missing = Paths.Values.Where(name => !byName.ContainsKey(name)).Distinct().ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException("gateway routes name methods the relay does not serve: " + string.Join(", ", missing));
        }

        _routes = Paths.ToFrozenDictionary(p => p.Key, p => byName[p.Value], StringComparer.Ordinal);
    }

    /// <summary>The method a gateway path calls, or null for a path etcd's gateway does not serve.</summary>
    public RelayedMethod? Find(PathString path)
    {
        var value = path.Value ?? "";
        var rest = value.StartsWith("/v3/", StringComparison.Ordinal) ? value["/v3".Length..]
            : value.StartsWith("/v3beta/", StringComparison.Ordinal) ? value["/v3beta".Length..]
            : null;
        return rest is not null && _routes.TryGetValue(rest, out var method) ? method : null;
    }
}
