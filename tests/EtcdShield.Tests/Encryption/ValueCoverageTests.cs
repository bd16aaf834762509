using EtcdShield.Configuration;
using EtcdShield.Encryption;
using EtcdShield.Relay;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Encryption;

/// <summary>Every method of the served API that can carry a value has a value handler, and one that has none stops the proxy.</summary>
public sealed class ValueCoverageTests
{
    [Fact]
    public void The_methods_that_can_carry_values_are_found_by_walking_the_descriptors()
    {
        var carrying = ValueCoverage.CarryingValues(EtcdApi.Services.SelectMany(s => s.Methods)).ToHashSet();

        Assert.Equal(
            new HashSet<string>
            {
                "KV/Range", "KV/Put", "KV/DeleteRange", "KV/Txn", "Watch/Watch",
                "Election/Campaign", "Election/Proclaim", "Election/Leader", "Election/Observe",
            },
            carrying);
    }

    [Fact]
    public void The_value_route_table_covers_every_method_that_can_carry_a_value()
    {
        var routes = new RelayRoutes();
        using var meters = TestMeterFactory.Create();

        // AddTo runs the coverage check itself; it would throw naming any method left out.
        ValueRoutes.AddTo(routes, PassthroughValueProtector.Instance, new ValueLimits(1_572_864, 128), TimeProvider.System, meters, NullLoggerFactory.Instance);

        Assert.All(ValueCoverage.CarryingValues(EtcdApi.Services.SelectMany(s => s.Methods)), m => Assert.True(routes.Covers(m), m));
    }

    [Fact]
    public void A_new_method_whose_value_hides_in_a_nested_oneof_and_has_no_handler_is_refused_by_name()
    {
        var service = SyntheticService();

        var refusal = Assert.Throws<ConfigurationException>(() => ValueCoverage.Require(service.Methods, _ => false));

        Assert.Contains("Future/Stash", refusal.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Future/Ping", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("refusing to start", refusal.Message, StringComparison.Ordinal);
        ValueCoverage.Require(service.Methods, name => name == "Future/Stash");
    }

    [Fact]
    public void Recursive_messages_without_values_are_walked_to_the_end_and_carry_none()
    {
        var service = SyntheticService();

        Assert.False(ValueCoverage.CanCarryValue(service.Methods.Single(m => m.Name == "Ping").InputType));
        Assert.True(ValueCoverage.CanCarryValue(service.Methods.Single(m => m.Name == "Stash").InputType));
    }

    /// <summary>
    /// A service a later etcd API could add: Stash's request holds a repeated Entry whose oneof may hold an Item with
    /// a bytes <c>value</c>; Ping's request is recursive (Tree holds Trees) and holds only a string named value.
    /// </summary>
    private static ServiceDescriptor SyntheticService()
    {
        var file = new FileDescriptorProto { Name = "future.proto", Package = "future", Syntax = "proto3" };
        file.MessageType.Add(Message("Item", Field("value", 1, FieldDescriptorProto.Types.Type.Bytes)));
        var entry = Message("Entry", Field("name", 1, FieldDescriptorProto.Types.Type.String), Field("item", 2, FieldDescriptorProto.Types.Type.Message, ".future.Item"));
        entry.OneofDecl.Add(new OneofDescriptorProto { Name = "kind" });
        entry.Field[0].OneofIndex = 0;
        entry.Field[1].OneofIndex = 0;
        file.MessageType.Add(entry);
        var stash = Message("StashRequest", Field("entries", 1, FieldDescriptorProto.Types.Type.Message, ".future.Entry"));
        stash.Field[0].Label = FieldDescriptorProto.Types.Label.Repeated;
        file.MessageType.Add(stash);
        var tree = Message("Tree", Field("value", 1, FieldDescriptorProto.Types.Type.String), Field("children", 2, FieldDescriptorProto.Types.Type.Message, ".future.Tree"));
        tree.Field[1].Label = FieldDescriptorProto.Types.Label.Repeated;
        file.MessageType.Add(tree);
        file.MessageType.Add(Message("Empty"));
        file.Service.Add(new ServiceDescriptorProto
        {
            Name = "Future",
            Method =
            {
                new MethodDescriptorProto { Name = "Stash", InputType = ".future.StashRequest", OutputType = ".future.Empty" },
                new MethodDescriptorProto { Name = "Ping", InputType = ".future.Tree", OutputType = ".future.Empty" },
            },
        });

        return FileDescriptor.BuildFromByteStrings([file.ToByteString()]).Single().Services.Single();
    }

    private static DescriptorProto Message(string name, params FieldDescriptorProto[] fields)
    {
        var message = new DescriptorProto { Name = name };
        message.Field.Add(fields);
        return message;
    }

    private static FieldDescriptorProto Field(string name, int number, FieldDescriptorProto.Types.Type type, string? typeName = null)
    {
        var field = new FieldDescriptorProto { Name = name, Number = number, Type = type, Label = FieldDescriptorProto.Types.Label.Optional };
        if (typeName is not null)
        {
            field.TypeName = typeName;
        }

        return field;
    }
}
