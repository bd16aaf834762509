using EtcdShield.Api;
using EtcdShield.Encryption;
using EtcdShield.Hosting;
using EtcdShield.Relay;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Hosting;

public sealed class ShieldHostTests
{
    [Fact]
    public void The_composed_value_routes_cover_every_method_that_can_carry_a_value()
    {
        var routes = new RelayRoutes();
        using var meters = TestMeterFactory.Create();

        // AddValueRoutes runs the coverage check over the composed table; it would throw naming any method left out.
        ShieldHost.AddValueRoutes(routes, PassthroughValueProtector.Instance, new ValueLimits(1_572_864, 128), TimeProvider.System, new EncryptionMetrics(meters), NullLoggerFactory.Instance);

        Assert.All(ValueCoverage.CarryingValues(EtcdApi.Methods), m => Assert.True(routes.Covers(m), m.FullName));
    }

    [Fact]
    public void The_kv_and_watch_routes_alone_leave_the_concurrency_services_uncovered()
    {
        var routes = new RelayRoutes();
        using var meters = TestMeterFactory.Create();

        ValueRoutes.AddTo(routes, PassthroughValueProtector.Instance, new ValueLimits(1_572_864, 128), TimeProvider.System, new EncryptionMetrics(meters), NullLoggerFactory.Instance);

        var uncovered = ValueCoverage.CarryingValues(EtcdApi.Methods).Where(m => !routes.Covers(m)).Select(EtcdApi.NameOf).Order(StringComparer.Ordinal);
        Assert.Equal(["Election/Campaign", "Election/Leader", "Election/Observe", "Election/Proclaim"], uncovered);
    }
}
