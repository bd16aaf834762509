using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Protocol.V3lockpb;
using Google.Protobuf;

namespace EtcdShield.Tests.Authorization;

/// <summary>Which leases a request may use: the caller's own (by tag), or any for an identity that manages every lease.</summary>
public sealed class LeaseUsesTests
{
    private static readonly PolicyIdentity Alice = Tenant("alice");
    private static readonly PolicyIdentity Mallory = Tenant("mallory");
    private static readonly PolicyIdentity Admin = Assert.Single(AccessPolicy.FromAllowFlags(["root"], [], []));

    private static readonly long AlicesLease = LeaseTag.NewId(Alice.LeaseTag);

    private static PolicyIdentity Tenant(string name) =>
        new(name, new IdentityMatch([name], [], [], [], []), MethodNames.Expand("Lease")!, new KeyGrants([(KeyRange.Prefix([(byte)'/']), KeyPermission.ReadWrite)]));

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static PutRequest Put(long lease) => new() { Key = B("/k"), Value = B("v"), Lease = lease };

    public static TheoryData<string, IMessage> UsesOfAlicesLease => new()
    {
        { "Lease/LeaseRevoke", new LeaseRevokeRequest { ID = AlicesLease } },
        { "Lease/LeaseTimeToLive", new LeaseTimeToLiveRequest { ID = AlicesLease, Keys = true } },
        { "Lease/LeaseKeepAlive", new LeaseKeepAliveRequest { ID = AlicesLease } },
        { "Lease/LeaseGrant", new LeaseGrantRequest { ID = AlicesLease + 1, TTL = 60 } },
        { "KV/Put", Put(AlicesLease) },
        { "KV/Txn", new TxnRequest { Failure = { new RequestOp { RequestTxn = new TxnRequest { Success = { new RequestOp { RequestPut = Put(AlicesLease) } } } } } } },
        { "Lock/Lock", new LockRequest { Name = B("/l"), Lease = AlicesLease } },
        { "Election/Campaign", new CampaignRequest { Name = B("/e"), Lease = AlicesLease, Value = B("v") } },
        { "Election/Proclaim", new ProclaimRequest { Leader = new LeaderKey { Name = B("/e"), Key = B("/e/1"), Lease = AlicesLease }, Value = B("v") } },
        { "Election/Resign", new ResignRequest { Leader = new LeaderKey { Name = B("/e"), Key = B("/e/1"), Lease = AlicesLease } } },
    };

    [Theory]
    [MemberData(nameof(UsesOfAlicesLease))]
    public void Only_the_owner_and_an_administrator_may_use_a_lease(string method, IMessage request)
    {
        Assert.Null(LeaseUses.Foreign(Alice, method, request));
        Assert.Null(LeaseUses.Foreign(Admin, method, request));
        Assert.Contains("lease " + (request is LeaseGrantRequest g ? g.ID : AlicesLease).ToString("x", System.Globalization.CultureInfo.InvariantCulture), LeaseUses.Foreign(Mallory, method, request), StringComparison.Ordinal);
    }

    [Fact]
    public void Requests_without_a_lease_need_no_ownership()
    {
        Assert.Null(LeaseUses.Foreign(Mallory, "KV/Put", Put(0)));
        Assert.Null(LeaseUses.Foreign(Mallory, "Lease/LeaseGrant", new LeaseGrantRequest { TTL = 60 }));
        Assert.Null(LeaseUses.Foreign(Mallory, "Lease/LeaseLeases", new LeaseLeasesRequest()));
        Assert.Null(LeaseUses.Foreign(Mallory, "KV/Range", new RangeRequest { Key = B("/k") }));
    }

    [Fact]
    public void A_lease_made_straight_in_etcd_belongs_to_no_tenant()
    {
        // etcd's own IDs: the member ID's low bits, then a timestamp and a counter; no policy chose their high bits.
        const long fromEtcd = 0x6294a230ce6b9205;
        var owners = new[] { Alice, Mallory }.Where(i => LeaseTag.Carries(fromEtcd, i.LeaseTag));

        Assert.Empty(owners);
        Assert.NotNull(LeaseUses.Foreign(Alice, "Lease/LeaseRevoke", new LeaseRevokeRequest { ID = fromEtcd }));
        Assert.Null(LeaseUses.Foreign(Admin, "Lease/LeaseRevoke", new LeaseRevokeRequest { ID = fromEtcd }));
    }

    [Fact]
    public void Every_key_without_every_lease_method_is_not_an_administrator_of_leases()
    {
        var writer = new PolicyIdentity("writer", new IdentityMatch(["writer"], [], [], [], []), [], KeyGrants.All);

        Assert.False(writer.ManagesEveryLease);
        Assert.NotNull(LeaseUses.Foreign(writer, "KV/Put", Put(AlicesLease)));
    }
}
