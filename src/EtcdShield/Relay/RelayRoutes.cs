using EtcdShield.Authorization;
using Google.Protobuf.Reflection;

namespace EtcdShield.Relay;

/// <summary>
/// Which methods need more than forwarding, and what handles them, keyed by the method's descriptor. Methods not
/// listed here are relayed exactly as they are, and those whose authorization needs only their name as bytes;
/// with encryption on, <see cref="Encryption.ValueCoverage"/> makes sure none of those can carry a value.
/// </summary>
internal sealed class RelayRoutes
{
    private readonly Dictionary<MethodDescriptor, IUnaryHandler> _unary = [];
    private readonly Dictionary<MethodDescriptor, IStreamRewriter> _streams = [];

    public RelayRoutes Handle(MethodDescriptor method, IUnaryHandler handler)
    {
        ArgumentNullException.ThrowIfNull(method);
        _unary.Add(method, handler);
        return this;
    }

    public RelayRoutes Rewrite(MethodDescriptor method, IStreamRewriter rewriter)
    {
        ArgumentNullException.ThrowIfNull(method);
        _streams.Add(method, rewriter);
        return this;
    }

    /// <summary>Whether <paramref name="method"/> has a handler or a stream rewriter.</summary>
    public bool Covers(MethodDescriptor method) => _unary.ContainsKey(method) || _streams.ContainsKey(method);

    /// <summary>
    /// Whether the proxy relays <paramref name="method"/> as the bytes on the wire: nothing rewrites its messages and
    /// its authorization needs only its name (Snapshot, Status, Alarm, Hash, Defragment, the Auth service, ...).
    /// </summary>
    public bool PassesBytes(RelayedMethod method) => !Covers(method.Descriptor) && !AccessGate.ReadsRequest(method.Name);

    public IUnaryHandler? UnaryHandler(RelayedMethod method) => _unary.GetValueOrDefault(method.Descriptor);

    public IStreamRewriter? StreamRewriter(RelayedMethod method) => _streams.GetValueOrDefault(method.Descriptor);
}
