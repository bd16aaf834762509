using System.Diagnostics;
using EtcdShield.Telemetry;
using Grpc.Core;

namespace EtcdShield.Tests.Telemetry;

public sealed class TraceContextTests
{
    private const string Parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    [Fact]
    public void A_clients_traceparent_and_tracestate_are_the_remote_parent()
    {
        var parent = TraceContext.ParentOf(new Metadata { { "traceparent", Parent }, { "tracestate", "vendor=1" } });

        Assert.Equal("0af7651916cd43dd8448eb211c80319c", parent.TraceId.ToHexString());
        Assert.Equal("b7ad6b7169203331", parent.SpanId.ToHexString());
        Assert.Equal(ActivityTraceFlags.Recorded, parent.TraceFlags);
        Assert.Equal("vendor=1", parent.TraceState);
        Assert.True(parent.IsRemote);
    }

    [Theory]
    [InlineData("")]
    [InlineData("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331")]
    [InlineData("00-00000000000000000000000000000000-b7ad6b7169203331-01")]
    [InlineData("zz-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    public void A_missing_or_malformed_traceparent_is_no_parent(string traceparent)
    {
        var headers = traceparent.Length == 0 ? new Metadata { { "other", "x" } } : new Metadata { { "traceparent", traceparent } };

        Assert.Equal(default, TraceContext.ParentOf(headers));
    }

    [Fact]
    public void Propagating_replaces_the_clients_trace_context_and_keeps_every_other_entry()
    {
        using var span = new Activity("call").SetParentId(Parent).Start();
        span.TraceStateString = "vendor=2";

        var sent = TraceContext.Propagate(new Metadata { { "traceparent", Parent }, { "tracestate", "vendor=1" }, { "hasleader", "true" } }, span);

        Assert.Equal(
            [("hasleader", "true"), ("traceparent", span.Id!), ("tracestate", "vendor=2")],
            sent.Select(e => (e.Key, e.Value)));
        Assert.StartsWith("00-0af7651916cd43dd8448eb211c80319c-", span.Id, StringComparison.Ordinal);
    }
}
