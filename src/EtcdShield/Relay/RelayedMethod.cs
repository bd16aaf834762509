using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace EtcdShield.Relay;

/// <summary>
/// One etcd RPC the proxy relays, described once from the generated protobuf descriptors. The same
/// <see cref="Method"/> serves both sides: it is registered with the server and invoked on the upstream channel.
/// </summary>
internal sealed class RelayedMethod
{
    public RelayedMethod(MethodDescriptor descriptor)
    {
        Descriptor = descriptor;
        var type = (descriptor.IsClientStreaming, descriptor.IsServerStreaming) switch
        {
            (false, false) => MethodType.Unary,
            (false, true) => MethodType.ServerStreaming,
            (true, false) => MethodType.ClientStreaming,
            (true, true) => MethodType.DuplexStreaming,
        };
        Method = new Method<IMessage, IMessage>(
            type,
            descriptor.Service.FullName,
            descriptor.Name,
            MarshallerFor(descriptor.InputType),
            MarshallerFor(descriptor.OutputType));
        Name = $"{descriptor.Service.Name}/{descriptor.Name}";
    }

    public MethodDescriptor Descriptor { get; }

    public Method<IMessage, IMessage> Method { get; }

    /// <summary>Short name used in metrics and logs, e.g. <c>KV/Range</c>.</summary>
    public string Name { get; }

    private static Marshaller<IMessage> MarshallerFor(MessageDescriptor message)
    {
        var parser = message.Parser;
        return Marshallers.Create<IMessage>(
            (value, context) =>
            {
                context.SetPayloadLength(value.CalculateSize());
                value.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => parser.ParseFrom(context.PayloadAsReadOnlySequence()));
    }
}
