using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace EtcdShield.Tests;

/// <summary>
/// A meter factory of one test's own, the one dependency injection builds: a <c>MetricCollector</c> given it sees
/// only that test's meters, however many tests run in parallel. Disposing it disposes its meters.
/// </summary>
internal static class TestMeterFactory
{
    public static IMeterFactory Create() =>
        new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
}
