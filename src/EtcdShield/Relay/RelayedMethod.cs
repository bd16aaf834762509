using System.Buffers;
using EtcdShield.Api;
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
            MarshallerFor(descriptor.InputType, ClientRequest),
            MarshallerFor(descriptor.OutputType, EtcdResponse));
        Name = EtcdApi.NameOf(descriptor);
    }

    /// <summary>Every method of <see cref="EtcdApi"/>, as the relay registers and forwards it.</summary>
    public static IEnumerable<RelayedMethod> All() => EtcdApi.Methods.Select(m => new RelayedMethod(m));

    public MethodDescriptor Descriptor { get; }

    public Method<IMessage, IMessage> Method { get; }

    /// <summary>Short name used in metrics and logs, e.g. <c>KV/Range</c>.</summary>
    public string Name { get; }

    /// <summary>
    /// Parses a client's request (the server side is the only one that deserializes requests). A message that
    /// does not parse, including one nested deeper than Google.Protobuf's recursion limit of 100 (a Txn nested
    /// about 50 deep), is answered as etcd's grpc-go server answers an unparsable request, INTERNAL "grpc: error
    /// unmarshalling request", instead of surfacing as an unexpected server error that a client could use to
    /// fill the error log.
    /// </summary>
    private static IMessage ClientRequest(MessageParser parser, ReadOnlySequence<byte> payload)
    {
        try
        {
            return parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new RpcException(new Status(StatusCode.Internal, "grpc: error unmarshalling request: " + e.Message));
        }
    }

    /// <summary>Parses etcd's answer; a failure there is the proxy's or etcd's fault and is reported as such.</summary>
    private static IMessage EtcdResponse(MessageParser parser, ReadOnlySequence<byte> payload) => parser.ParseFrom(payload);

    private static Marshaller<IMessage> MarshallerFor(MessageDescriptor message, Func<MessageParser, ReadOnlySequence<byte>, IMessage> parse)
    {
        var parser = message.Parser;
        return Marshallers.Create<IMessage>(
            (value, context) =>
            {
                context.SetPayloadLength(value.CalculateSize());
                value.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => parse(parser, context.PayloadAsReadOnlySequence()));
    }
}
