using System.Reflection;
using EtcdShield.Hosting;
using Microsoft.Extensions.Logging;

namespace EtcdShield.Tests;

/// <summary>
/// Operators' alert rules match log events by id and name, so every event has both, no two events share either,
/// and each feature folder keeps its events in a block of 100 ids of its own (the block its <c>EventIds</c> class
/// uses), so two features cannot collide again.
/// </summary>
public sealed class EventIdsTests
{
    private const BindingFlags Declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static readonly Assembly Shield = typeof(ShieldHost).Assembly;

    private static readonly (string Feature, string Method, LoggerMessageAttribute Attribute)[] Events =
    [
        .. from type in Shield.GetTypes()
           from method in type.GetMethods(Declared)
           let attribute = method.GetCustomAttribute<LoggerMessageAttribute>()
           where attribute is not null
           select (type.Namespace!, $"{type.FullName}.{method.Name}", attribute),
    ];

    private static readonly Type[] EventIdClasses = [.. Shield.GetTypes().Where(t => t.Name == "EventIds")];

    [Fact]
    public void The_assembly_has_log_events_and_an_EventIds_class_per_feature_that_logs()
    {
        Assert.True(Events.Length >= 40, $"found only {Events.Length} [LoggerMessage] methods; is the reflection looking in the right place?");
        Assert.Equal(
            Events.Select(e => e.Feature).Distinct().Order(StringComparer.Ordinal),
            EventIdClasses.Select(t => t.Namespace!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Every_event_has_its_row_in_the_operations_guide()
    {
        // docs/operations.md tells operators what each event means and what to do: a new event needs its row there.
        var guide = File.ReadAllText(RepositoryFile.Find(Path.Combine("docs", "operations.md")));

        Assert.Equal([], Events.Where(e => !guide.Contains($"| {e.Attribute.EventId} | {e.Attribute.EventName} |", StringComparison.Ordinal)).Select(e => e.Method));
    }

    [Fact]
    public void Every_event_is_named_as_its_log_method()
    {
        Assert.All(Events, e =>
        {
            Assert.False(string.IsNullOrEmpty(e.Attribute.EventName), $"{e.Method} has no EventName");
            Assert.EndsWith("." + e.Attribute.EventName, e.Method, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void No_two_events_share_an_id_or_a_name()
    {
        Assert.Empty(Events.GroupBy(e => e.Attribute.EventId).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => e.Method))}"));
        Assert.Empty(Events.GroupBy(e => e.Attribute.EventName).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => e.Method))}"));
    }

    [Fact]
    public void Each_event_takes_its_id_from_its_own_features_EventIds()
    {
        Assert.All(Events, e =>
        {
            var ids = Constants(EventIdClasses.Single(t => t.Namespace == e.Feature));
            Assert.True(ids.TryGetValue(e.Attribute.EventName!, out var id), $"{e.Method}: {e.Feature}.EventIds has no {e.Attribute.EventName}");
            Assert.Equal(id, e.Attribute.EventId);
        });
    }

    [Fact]
    public void Every_EventIds_constant_names_one_event()
    {
        var named = Events.Select(e => (e.Feature, e.Attribute.EventName!)).ToHashSet();
        Assert.All(EventIdClasses, type => Assert.All(
            Constants(type).Keys,
            name => Assert.True(named.Contains((type.Namespace!, name)), $"{type.FullName}.{name} is used by no log method")));
    }

    [Fact]
    public void Each_feature_keeps_its_ids_in_a_block_of_100_no_other_feature_uses()
    {
        var blocks = EventIdClasses.ToDictionary(t => t.Namespace!, t => Constants(t).Values.Select(id => id / 100).Distinct().ToArray());

        Assert.All(blocks, b => Assert.True(b.Value.Length == 1, $"{b.Key} spreads over the blocks {string.Join(", ", b.Value.Select(x => x * 100))}"));
        Assert.Empty(blocks.GroupBy(b => b.Value[0]).Where(g => g.Count() > 1).Select(g => $"{g.Key * 100}: {string.Join(", ", g.Select(b => b.Key))}"));
    }

    private static Dictionary<string, int> Constants(Type eventIds) =>
        eventIds.GetFields(Declared)
            .Where(f => f.IsLiteral && f.FieldType == typeof(int))
            .ToDictionary(f => f.Name, f => (int)f.GetRawConstantValue()!);
}
