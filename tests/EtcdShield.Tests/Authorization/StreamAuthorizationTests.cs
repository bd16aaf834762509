using System.Diagnostics.Metrics;
using System.Text;
using EtcdShield.Audit;
using EtcdShield.Authorization;
using EtcdShield.Configuration;
using EtcdShield.Protocol.V3electionpb;
using EtcdShield.Relay;
using EtcdShield.Tls;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace EtcdShield.Tests.Authorization;

/// <summary>What may open, and keep open, a stream: the checks an open stream is judged by again after a reload.</summary>
public sealed class StreamAuthorizationTests : IDisposable
{
    private static readonly AccessPolicy Policy = new(PolicyFile.Parse("""
        identities:
          - name: reader
            match: { cn: reader }
            methods: [Lease/LeaseKeepAlive]
            keys: [{ prefix: /a/, permission: read }, { prefix: /election/, permission: read }]
          - name: writer
            match: { cn: writer }
            keys: [{ prefix: /a/, permission: write }]
        """), "test");

    private readonly IMeterFactory _meters = TestMeterFactory.Create();
    private readonly AuditLog _audit;
    private readonly AccessGate _gate;

    public StreamAuthorizationTests()
    {
        _audit = new AuditLog(new ShieldOptions(), _meters, NullLogger<AuditLog>.Instance);
        _gate = new AccessGate(KeyRedaction.None, new AuthorizationMetrics(_meters), NullLogger<AccessGate>.Instance);
    }

    public void Dispose()
    {
        _audit.Dispose();
        _meters.Dispose();
    }

    private static Caller As(string name) => new(ClientIdentity.Unknown, Policy.Identities.Single(i => i.Name == name), Policy, "127.0.0.1:1");

    private static KeyRange Prefix(string prefix) => KeyRange.Prefix(Encoding.UTF8.GetBytes(prefix));

    [Fact]
    public void A_watch_stream_needs_a_key_to_read()
    {
        Assert.Null(_gate.AuthorizeStream(As("reader"), "Watch/Watch", null, null));

        var refused = _gate.AuthorizeStream(As("writer"), "Watch/Watch", null, null);

        Assert.Equal(StatusCode.PermissionDenied, refused?.StatusCode);
        Assert.Equal("etcdshield: permission denied: identity \"writer\" may not watch: it may read no key", refused?.Status.Detail);
    }

    [Fact]
    public void Other_streams_need_their_method_or_the_keys_of_their_request()
    {
        Assert.Null(_gate.AuthorizeStream(As("reader"), "Lease/LeaseKeepAlive", null, null));
        Assert.NotNull(_gate.AuthorizeStream(As("writer"), "Lease/LeaseKeepAlive", null, null));
        Assert.NotNull(_gate.AuthorizeStream(As("reader"), "Maintenance/Snapshot", new Protocol.Etcdserverpb.SnapshotRequest(), null));
        Assert.Null(_gate.AuthorizeStream(As("reader"), "Election/Observe", new LeaderRequest { Name = ByteString.CopyFromUtf8("/election/e") }, null));
        Assert.NotNull(_gate.AuthorizeStream(As("reader"), "Election/Observe", new LeaderRequest { Name = ByteString.CopyFromUtf8("/elsewhere/e") }, null));
        var revoked = As("reader") with { Identity = null, Revoked = true };
        Assert.Contains("revoked", _gate.AuthorizeStream(revoked, "Lease/LeaseKeepAlive", null, null)?.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_watch_no_longer_readable_gets_the_cancel_reason_of_a_refused_one()
    {
        Assert.Null(_gate.AuthorizeWatch(As("reader"), "Watch/Watch", Prefix("/a/b/")));

        var denial = _gate.AuthorizeWatch(As("reader"), "Watch/Watch", Prefix("/b/"));
        Assert.NotNull(denial);
        Assert.Equal(
            "rpc error: code = PermissionDenied desc = etcdshield: permission denied: identity \"reader\" may not read prefix \"/b/\" (Watch/Watch watch)",
            StreamJudge<IMessage>.CancelReason(denial));
        Assert.Equal(
            "etcdshield: permission denied: identity \"sha256:0000000000000000\" matches no identity of the policy",
            _gate.AuthorizeWatch(As("reader") with { Identity = null }, "Watch/Watch", Prefix("/a/"))?.Status.Detail);
    }
}
