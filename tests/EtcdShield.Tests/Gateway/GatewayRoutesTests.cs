using EtcdShield.Api;
using EtcdShield.Gateway;
using EtcdShield.Relay;
using Microsoft.AspNetCore.Http;

namespace EtcdShield.Tests.Gateway;

public sealed class GatewayRoutesTests
{
    private readonly GatewayRoutes _routes = new(RelayedMethod.All());

    [Theory]
    [InlineData("/v3/kv/range", "KV/Range")]
    [InlineData("/v3beta/kv/put", "KV/Put")]
    [InlineData("/v3/kv/compaction", "KV/Compact")]
    [InlineData("/v3/kv/lease/revoke", "Lease/LeaseRevoke")]
    [InlineData("/v3/kv/lease/timetolive", "Lease/LeaseTimeToLive")]
    [InlineData("/v3/lease/leases", "Lease/LeaseLeases")]
    [InlineData("/v3/maintenance/transfer-leadership", "Maintenance/MoveLeader")]
    [InlineData("/v3/auth/user/changepw", "Auth/UserChangePassword")]
    [InlineData("/v3/election/observe", "Election/Observe")]
    [InlineData("/v3/lock/unlock", "Lock/Unlock")]
    public void A_gateway_path_calls_the_method_etcds_gateway_calls(string path, string method) =>
        Assert.Equal(method, _routes.Find(new PathString(path))?.Name);

    [Theory]
    [InlineData("/v3alpha/kv/range")]
    [InlineData("/v3/kv/Range")]
    [InlineData("/v3/kv/range/")]
    [InlineData("/v3/kv")]
    [InlineData("/v3/")]
    [InlineData("/v4/kv/range")]
    [InlineData("/etcdserverpb.KV/Range")]
    public void Other_paths_call_nothing(string path) => Assert.Null(_routes.Find(new PathString(path)));

    [Fact]
    public void Every_method_the_proxy_relays_has_a_gateway_path() =>
        Assert.Empty(EtcdApi.ShortNames.Except(GatewayRoutes.Paths.Values));

    [Fact]
    public void A_route_naming_a_method_the_relay_does_not_serve_stops_the_proxy_at_start()
    {
        var error = Assert.Throws<InvalidOperationException>(() => new GatewayRoutes(RelayedMethod.All().Where(m => m.Name != "KV/Txn")));
        Assert.Contains("KV/Txn", error.Message, StringComparison.Ordinal);
    }
}
