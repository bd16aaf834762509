using Grpc.AspNetCore.Server.Model;

namespace EtcdShield.Relay;

/// <summary>
/// The gRPC service the server hosts. It has no methods of its own: <see cref="RelayMethodProvider"/>
/// registers every etcd method from <see cref="EtcdApi"/> and binds it to <see cref="RequestRelay"/>.
/// </summary>
internal sealed class RelayService
{
}

internal sealed class RelayMethodProvider : IServiceMethodProvider<RelayService>
{
    private readonly RequestRelay _relay;

    public RelayMethodProvider(RequestRelay relay) => _relay = relay;

    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<RelayService> context)
    {
        foreach (var method in EtcdApi.Methods())
        {
            switch (method.Method.Type)
            {
                case Grpc.Core.MethodType.Unary:
                    context.AddUnaryMethod(method.Method, [], (_, request, call) => _relay.UnaryAsync(method, request, call));
                    break;
                case Grpc.Core.MethodType.ServerStreaming:
                    context.AddServerStreamingMethod(method.Method, [], (_, request, responses, call) => _relay.ServerStreamingAsync(method, request, responses, call));
                    break;
                case Grpc.Core.MethodType.DuplexStreaming:
                    context.AddDuplexStreamingMethod(method.Method, [], (_, requests, responses, call) => _relay.DuplexStreamingAsync(method, requests, responses, call));
                    break;
                default:
                    // etcd v3 has no client-streaming method; one appearing in a future API is refused, not guessed at.
                    break;
            }
        }
    }
}
