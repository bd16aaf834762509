using Google.Protobuf;

namespace EtcdShield.Relay;

/// <summary>
/// Takes over one unary method when plain forwarding is not enough (values to encrypt, URLs to hide).
/// The handler decides how to reach etcd through <see cref="RelayCall"/>.
/// </summary>
internal interface IUnaryHandler
{
    Task<IMessage> HandleAsync(IMessage request, RelayCall call);
}

/// <summary>Typed base so handlers work with the generated messages rather than casts.</summary>
internal abstract class UnaryHandler<TRequest, TResponse> : IUnaryHandler
    where TRequest : class, IMessage
    where TResponse : class, IMessage
{
    public async Task<IMessage> HandleAsync(IMessage request, RelayCall call) =>
        await HandleAsync((TRequest)request, call).ConfigureAwait(false);

    protected abstract Task<TResponse> HandleAsync(TRequest request, RelayCall call);

    protected static async Task<TResponse> ForwardAsync(TRequest request, RelayCall call) =>
        (TResponse)await call.ForwardUnaryAsync(request).ConfigureAwait(false);
}
