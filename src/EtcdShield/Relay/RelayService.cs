using Grpc.AspNetCore.Server.Model;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// The gRPC service the server hosts. It has no methods of its own: <see cref="RelayMethodProvider"/>
/// registers every etcd method from <see cref="Api.EtcdApi"/> and binds it to <see cref="RequestRelay"/>.
/// </summary>
internal sealed class RelayService
{
}

internal sealed class RelayMethodProvider : IServiceMethodProvider<RelayService>
{
    private readonly RequestRelay _relay;
    private readonly RelayRoutes _routes;

    public RelayMethodProvider(RequestRelay relay, RelayRoutes routes)
    {
        _relay = relay;
        _routes = routes;
    }

    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<RelayService> context)
    {
        foreach (var method in RelayedMethod.All())
        {
            var bytes = _routes.PassesBytes(method);
            switch (method.Type)
            {
                case MethodType.Unary when bytes:
                    context.AddUnaryMethod(method.Bytes, [], (_, request, call) => _relay.PassUnaryAsync(method, request, call));
                    break;
                case MethodType.Unary:
                    context.AddUnaryMethod(method.Method, [], (_, request, call) => _relay.UnaryAsync(method, request, call));
                    break;
                case MethodType.ServerStreaming when bytes:
                    context.AddServerStreamingMethod(method.Bytes, [], (_, request, responses, call) => _relay.ServerStreamingAsync(method, request, responses, call));
                    break;
                case MethodType.ServerStreaming:
                    context.AddServerStreamingMethod(method.Method, [], (_, request, responses, call) => _relay.ServerStreamingAsync(method, request, responses, call));
                    break;
                case MethodType.DuplexStreaming when bytes:
                    context.AddDuplexStreamingMethod(method.Bytes, [], (_, requests, responses, call) => _relay.DuplexStreamingAsync(method, requests, responses, call));
                    break;
                case MethodType.DuplexStreaming:
                    context.AddDuplexStreamingMethod(method.Method, [], (_, requests, responses, call) => _relay.DuplexStreamingAsync(method, requests, responses, call));
                    break;
                default:
                    // etcd v3 has no client-streaming method; one appearing in a future API is refused, not guessed at.
                    break;
            }
        }
    }
}
