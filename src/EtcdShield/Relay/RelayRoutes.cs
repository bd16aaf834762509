namespace EtcdShield.Relay;

/// <summary>
/// Which methods need more than forwarding, and what handles them. Methods not listed here are relayed
/// exactly as they are; with encryption on, <see cref="Encryption.ValueCoverage"/> makes sure none of those
/// can carry a value.
/// </summary>
internal sealed class RelayRoutes
{
    private readonly Dictionary<string, IUnaryHandler> _unary = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IStreamRewriter> _streams = new(StringComparer.Ordinal);

    /// <param name="method">Short method name, e.g. <c>KV/Put</c>.</param>
    public RelayRoutes Handle(string method, IUnaryHandler handler)
    {
        _unary.Add(method, handler);
        return this;
    }

    /// <param name="method">Short method name, e.g. <c>Watch/Watch</c>.</param>
    public RelayRoutes Rewrite(string method, IStreamRewriter rewriter)
    {
        _streams.Add(method, rewriter);
        return this;
    }

    /// <summary>Whether <paramref name="method"/> (a short name) has a handler or a stream rewriter.</summary>
    public bool Covers(string method) => _unary.ContainsKey(method) || _streams.ContainsKey(method);

    public IUnaryHandler? UnaryHandler(RelayedMethod method) => _unary.GetValueOrDefault(method.Name);

    public IStreamRewriter? StreamRewriter(RelayedMethod method) => _streams.GetValueOrDefault(method.Name);
}
