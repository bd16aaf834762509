using System.Diagnostics;
using Grpc.Core;

namespace EtcdShield.Telemetry;

/// <summary>
/// W3C trace context on gRPC metadata: the client's span a request joins, and the proxy's span an upstream call
/// carries to etcd in its place (etcd 3.5+ joins the trace from it).
/// </summary>
internal static class TraceContext
{
    public const string ParentHeader = "traceparent";

    public const string StateHeader = "tracestate";

    /// <summary>The client's span from its <c>traceparent</c> (and <c>tracestate</c>), or default when it sent none or a malformed one.</summary>
    public static ActivityContext ParentOf(Metadata headers)
    {
        string? parent = null;
        string? state = null;
        foreach (var entry in headers)
        {
            if (entry.IsBinary)
            {
                continue;
            }

            if (entry.Key == ParentHeader)
            {
                parent ??= entry.Value;
            }
            else if (entry.Key == StateHeader)
            {
                state ??= entry.Value;
            }
        }

        return parent is not null && ActivityContext.TryParse(parent, state, isRemote: true, out var context) ? context : default;
    }

    /// <summary>
    /// <paramref name="headers"/> with the client's trace context replaced by <paramref name="span"/>'s, so that
    /// etcd's spans hang from the proxy's call to it rather than from the client's call to the proxy.
    /// </summary>
    public static Metadata Propagate(Metadata? headers, Activity span)
    {
        var propagated = new Metadata();
        if (headers is not null)
        {
            foreach (var entry in headers)
            {
                if (entry.Key is not (ParentHeader or StateHeader))
                {
                    propagated.Add(entry);
                }
            }
        }

        propagated.Add(ParentHeader, span.Id!);
        if (span.TraceStateString is { Length: > 0 } state)
        {
            propagated.Add(StateHeader, state);
        }

        return propagated;
    }
}
