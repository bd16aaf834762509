using EtcdShield.Authorization;
using EtcdShield.Protocol.Etcdserverpb;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Protocol.V3lockpb;
using EtcdShield.Tls;
using Google.Protobuf;

namespace EtcdShield.Tests.Authorization;

/// <summary>The decision for every kind of request, from the identities of <see cref="PolicyFileTests.ThreeIdentities"/>.</summary>
public sealed class AccessCheckTests
{
    private static readonly IReadOnlyList<PolicyIdentity> Identities = PolicyFile.Parse(PolicyFileTests.ThreeIdentities);
    private static readonly AccessPolicy Policy = new(Identities, "test");

    private static Caller As(string name) =>
        new(ClientIdentity.Unknown, Identities.Single(i => i.Name == name), Policy, "127.0.0.1:1");

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static string? Check(string identity, string method, IMessage? request) => AccessGate.Check(As(identity), method, request);

    [Fact]
    public void Allows_what_is_granted()
    {
        Assert.Null(Check("kube-apiserver", "KV/Put", new PutRequest { Key = B("/registry/secrets/a"), Value = B("v"), PrevKv = true }));
        Assert.Null(Check("kube-apiserver", "KV/Range", new RangeRequest { Key = B("/registry/"), RangeEnd = B("/registry0") }));
        Assert.Null(Check("kube-apiserver", "KV/DeleteRange", new DeleteRangeRequest { Key = B("/registry/pods/"), RangeEnd = B("/registry/pods0") }));
        Assert.Null(Check("kube-apiserver", "Lease/LeaseGrant", new LeaseGrantRequest { TTL = 10 }));
        Assert.Null(Check("kube-apiserver", "Lease/LeaseKeepAlive", null));
        Assert.Null(Check("backup", "Maintenance/Snapshot", new SnapshotRequest()));
        Assert.Null(Check("monitor", "Maintenance/Status", new StatusRequest()));
    }

    [Theory]
    [InlineData("backup", "Maintenance/Status")]
    [InlineData("monitor", "Maintenance/Snapshot")]
    [InlineData("monitor", "Lease/LeaseGrant")]
    [InlineData("kube-apiserver", "Maintenance/Defragment")]
    [InlineData("kube-apiserver", "Auth/UserAdd")]
    [InlineData("kube-apiserver", "Cluster/MemberRemove")]
    public void Denies_methods_not_granted(string identity, string method) =>
        Assert.Equal($"may not call {method}", Check(identity, method, null));

    [Fact]
    public void Denies_keys_outside_the_grants_and_names_the_operation()
    {
        Assert.Equal("may not read key \"/other\" (KV/Range range)", Check("kube-apiserver", "KV/Range", new RangeRequest { Key = B("/other") }));
        Assert.Equal("may not read every key (KV/Range range)", Check("kube-apiserver", "KV/Range", new RangeRequest { Key = B("\0"), RangeEnd = B("\0") }));
        Assert.Equal("may not write key \"/registry\" (KV/Put put)", Check("kube-apiserver", "KV/Put", new PutRequest { Key = B("/registry"), Value = B("secret value") }));
        Assert.Equal("may not read key \"/registry/secrets/a\" (KV/Range range)", Check("backup", "KV/Range", new RangeRequest { Key = B("/registry/secrets/a") }));
    }

    [Fact]
    public void A_denial_never_carries_the_value()
    {
        // The exact text: a DoesNotContain alone would also pass if the put were (wrongly) allowed.
        Assert.Equal("may not write key \"/outside\" (KV/Put put)", Check("kube-apiserver", "KV/Put", new PutRequest { Key = B("/outside"), Value = B("hunter2") }));
    }

    [Fact]
    public void One_forbidden_op_anywhere_in_a_txn_denies_it()
    {
        var allowed = new RequestOp { RequestPut = new PutRequest { Key = B("/registry/a"), Value = B("v") } };
        var forbidden = new RequestOp { RequestRange = new RangeRequest { Key = B("/etc/passwd") } };
        var nested = new RequestOp { RequestTxn = new TxnRequest { Failure = { forbidden } } };

        Assert.Null(Check("kube-apiserver", "KV/Txn", new TxnRequest { Success = { allowed } }));
        Assert.Equal("may not read key \"/etc/passwd\" (KV/Txn range)", Check("kube-apiserver", "KV/Txn", new TxnRequest { Success = { allowed }, Failure = { forbidden } }));
        Assert.Equal("may not read key \"/etc/passwd\" (KV/Txn range)", Check("kube-apiserver", "KV/Txn", new TxnRequest { Success = { allowed, nested } }));
        Assert.Equal("may not read key \"/elsewhere\" (KV/Txn compare)", Check("kube-apiserver", "KV/Txn", new TxnRequest
        {
            Compare = { new Compare { Key = B("/elsewhere"), Target = Compare.Types.CompareTarget.Version } },
            Success = { allowed },
        }));
    }

    [Fact]
    public void Prev_kv_reads_what_it_overwrites()
    {
        var writeOnly = new PolicyIdentity("writer", new IdentityMatch(["w"], [], [], [], []), [], new KeyGrants([(KeyRange.Prefix("/w/"u8), KeyPermission.Write)]));
        var caller = new Caller(ClientIdentity.Unknown, writeOnly, Policy, "peer");

        Assert.Null(AccessGate.Check(caller, "KV/Put", new PutRequest { Key = B("/w/a") }));
        Assert.Equal("may not read and write key \"/w/a\" (KV/Put put)", AccessGate.Check(caller, "KV/Put", new PutRequest { Key = B("/w/a"), PrevKv = true }));
        Assert.Equal("may not read and write key \"/w/a\" (KV/DeleteRange delete)", AccessGate.Check(caller, "KV/DeleteRange", new DeleteRangeRequest { Key = B("/w/a"), PrevKv = true }));
    }

    [Fact]
    public void Watches_need_read_on_their_range_and_other_stream_messages_nothing()
    {
        Assert.Null(Check("kube-apiserver", "Watch/Watch", new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/registry/"), RangeEnd = B("/registry0") } }));
        Assert.Equal("may not read keys from \"/\" on (Watch/Watch watch)", Check("kube-apiserver", "Watch/Watch", new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("/"), RangeEnd = B("\0") } }));
        Assert.Null(Check("kube-apiserver", "Watch/Watch", new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = 1 } }));
    }

    [Fact]
    public void Locks_and_elections_need_their_name_prefix()
    {
        Assert.Null(Check("kube-apiserver", "Lock/Lock", new LockRequest { Name = B("/registry/locks/a") }));
        Assert.Equal("may not read and write prefix \"/locks/a/\" (Lock/Lock lock)", Check("kube-apiserver", "Lock/Lock", new LockRequest { Name = B("/locks/a") }));
        Assert.Null(Check("kube-apiserver", "Election/Campaign", new CampaignRequest { Name = B("/registry/e") }));
        Assert.Equal("may not read prefix \"/e/\" (Election/Observe leader)", Check("kube-apiserver", "Election/Observe", new LeaderRequest { Name = B("/e") }));
        Assert.Equal("may not read and write key \"/e/123\" (Election/Proclaim proclaim)", Check("kube-apiserver", "Election/Proclaim", new ProclaimRequest { Leader = new LeaderKey { Key = B("/e/123") } }));
        Assert.Equal("may not read and write key \"/registry/locks/a/1\" (Lock/Unlock unlock)", Check("monitor", "Lock/Unlock", new UnlockRequest { Key = B("/registry/locks/a/1") }));
    }

    [Fact]
    public void A_client_no_identity_matches_any_more_may_do_nothing()
    {
        var nobody = new Caller(ClientIdentity.Unknown, null, Policy, "peer");

        Assert.Equal("matches no identity of the policy", AccessGate.Check(nobody, "Maintenance/Status", null));
        Assert.Equal("matches no identity of the policy", AccessGate.Check(nobody, "KV/Range", new RangeRequest { Key = B("/registry/a") }));
    }

    [Fact]
    public void Allow_flag_identities_may_do_everything()
    {
        var admin = new Caller(ClientIdentity.Unknown, AccessPolicy.FromAllowFlags(["root"], [], [])[0], Policy, "peer");

        Assert.Null(AccessGate.Check(admin, "Maintenance/Defragment", null));
        Assert.Null(AccessGate.Check(admin, "KV/Range", new RangeRequest { Key = B("\0"), RangeEnd = B("\0") }));
    }
}
