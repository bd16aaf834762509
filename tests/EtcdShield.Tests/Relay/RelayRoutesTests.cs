using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Relay;
using Google.Protobuf;

namespace EtcdShield.Tests.Relay;

/// <summary>Which methods the relay passes as bytes, and that a handler always takes a method off that list.</summary>
public sealed class RelayRoutesTests
{
    private static RelayedMethod Method(string name) => RelayedMethod.All().Single(m => m.Name == name);

    [Fact]
    public void Methods_decided_by_their_name_alone_pass_as_bytes_and_the_rest_are_parsed()
    {
        var bytes = RelayedMethod.All().Where(new RelayRoutes().PassesBytes).Select(m => m.Name).ToHashSet();

        Assert.Equal(
            new HashSet<string>
            {
                "KV/Compact",
                "Cluster/MemberAdd", "Cluster/MemberRemove", "Cluster/MemberUpdate", "Cluster/MemberList", "Cluster/MemberPromote",
                "Maintenance/Alarm", "Maintenance/Status", "Maintenance/Defragment", "Maintenance/Hash", "Maintenance/HashKV",
                "Maintenance/Snapshot", "Maintenance/MoveLeader", "Maintenance/Downgrade",
                "Auth/AuthEnable", "Auth/AuthDisable", "Auth/AuthStatus", "Auth/Authenticate", "Auth/UserAdd", "Auth/UserGet",
                "Auth/UserList", "Auth/UserDelete", "Auth/UserChangePassword", "Auth/UserGrantRole", "Auth/UserRevokeRole",
                "Auth/RoleAdd", "Auth/RoleGet", "Auth/RoleList", "Auth/RoleDelete", "Auth/RoleGrantPermission", "Auth/RoleRevokePermission",
            },
            bytes);
    }

    [Fact]
    public void A_method_with_a_handler_is_parsed()
    {
        var routes = new RelayRoutes().Handle(Cluster.Descriptor.FindMethodByName("MemberList"), new Echo());

        Assert.False(routes.PassesBytes(Method("Cluster/MemberList")));
        Assert.True(routes.PassesBytes(Method("Cluster/MemberAdd")));
        Assert.IsType<Echo>(routes.UnaryHandler(Method("Cluster/MemberList")));
        Assert.Null(routes.UnaryHandler(Method("Cluster/MemberAdd")));
    }

    [Fact]
    public void A_method_is_routed_once()
    {
        var routes = new RelayRoutes().Handle(KV.Descriptor.FindMethodByName("Put"), new Echo());

        Assert.Throws<ArgumentException>(() => routes.Handle(KV.Descriptor.FindMethodByName("Put"), new Echo()));
        Assert.Throws<ArgumentNullException>(() => routes.Handle(KV.Descriptor.FindMethodByName("Putt"), new Echo()));
    }

    private sealed class Echo : IUnaryHandler
    {
        public Task<IMessage> HandleAsync(IMessage request, RelayCall call) => Task.FromResult(request);
    }
}
